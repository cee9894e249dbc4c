// Test peers for the data channel: a forked child that serves one end of a socketpair,
// either with a real libtpms engine or with a scripted misbehaviour.
//
//   ASSIGN_OR_RETURN(ForkedPeer peer, ForkEnginePeer());
//   ASSIGN_OR_RETURN(EsysContext esys, OpenEsys(peer.TakeFd()));
//
// libtpms is process-global, so the engine lives in the child only and the test process
// never initialises it (the pattern of tests/unit/vtpm/tpm_engine_test.cc). The child exits
// when the other end closes. ~ForkedPeer closes the parent's end and reaps the child.
// Header-only: the unit test binary links vtpm_engine; vtpm_tcti itself does not.
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vtpm/engine/tpm_engine.h"

namespace vmm::vtpm {

class ForkedPeer {
 public:
  // Runs `serve(child_end)` in a child; its return value is the child's exit code.
  static Result<ForkedPeer> Start(const std::function<int(UniqueFd)>& serve) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return ErrnoError("socketpair");
    }
    UniqueFd mine(sv[0]), theirs(sv[1]);
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) return ErrnoError("fork");
    if (pid == 0) {
      mine.reset();
      int code = serve(std::move(theirs));
      std::fflush(nullptr);
      _exit(code);
    }
    return ForkedPeer(pid, std::move(mine));
  }

  ForkedPeer(ForkedPeer&& o) noexcept : pid_(std::exchange(o.pid_, -1)), fd_(std::move(o.fd_)) {}
  ForkedPeer& operator=(ForkedPeer&&) = delete;
  ~ForkedPeer() {
    fd_.reset();
    if (pid_ > 0) Wait();
  }

  UniqueFd TakeFd() { return std::move(fd_); }

  // Closes the parent's end if still held, reaps the child, returns its wait status.
  int Wait() {
    fd_.reset();
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  ForkedPeer(pid_t pid, UniqueFd fd) : pid_(pid), fd_(std::move(fd)) {}
  pid_t pid_;
  UniqueFd fd_;
};

// Reads exactly n bytes; false on EOF or error.
inline bool PeerReadExact(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

inline bool PeerWriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

// Reads one whole command (header, then the rest); empty on EOF or a bad size.
inline std::vector<uint8_t> PeerReadCommand(int fd) {
  std::vector<uint8_t> cmd(kTpmHeaderSize);
  if (!PeerReadExact(fd, cmd.data(), cmd.size())) return {};
  const uint32_t size = LoadBe<uint32_t>(cmd, 2).value_or(0);
  if (size < kTpmHeaderSize || size > kMaxTpmCommandSize) return {};
  cmd.resize(size);
  if (!PeerReadExact(fd, cmd.data() + kTpmHeaderSize, size - kTpmHeaderSize)) return {};
  return cmd;
}

// A libtpms engine (no state store), started, answering commands until EOF.
inline Result<ForkedPeer> ForkEnginePeer() {
  return ForkedPeer::Start([](UniqueFd fd) {
    auto engine = TpmEngine::Create(nullptr);
    if (!engine) {
      std::fprintf(stderr, "engine peer: %s\n", engine.error().ToString().c_str());
      return 1;
    }
    auto started = (*engine)->Startup();
    if (!started) {
      std::fprintf(stderr, "engine peer: %s\n", started.error().ToString().c_str());
      return 1;
    }
    for (;;) {
      std::vector<uint8_t> cmd = PeerReadCommand(fd.get());
      if (cmd.empty()) return 0;
      auto rsp = (*engine)->Execute(cmd);
      if (!rsp) return 2;
      if (!PeerWriteAll(fd.get(), rsp->data(), rsp->size())) return 3;
    }
  });
}

}  // namespace vmm::vtpm
