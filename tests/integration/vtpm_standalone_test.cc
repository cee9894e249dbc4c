// The standalone vmm-vtpm (--ctrl) under more connections than its fd limit allows: it
// holds as many channels as the limit leaves room for and leaves the rest waiting, rather
// than spinning on accept4's EMFILE (a core and a log line per turn); the channels it holds
// are served meanwhile, and it accepts again once they close. No KVM needed.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "tests/integration/vmm_process.h"

namespace vmm::testing {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// /proc/PID/stat: fields after the ")" of the command name, numbered from 3 (state).
std::vector<std::string> StatFields(pid_t pid) {
  std::string stat = ReadText("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return {};
  std::istringstream in(stat.substr(paren + 2));
  std::vector<std::string> f;
  for (std::string s; in >> s;) f.push_back(s);
  return f;
}

// utime + stime, in clock ticks.
long CpuTicks(pid_t pid) {
  std::vector<std::string> f = StatFields(pid);
  return f.size() > 12 ? std::atol(f[11].c_str()) + std::atol(f[12].c_str()) : -1;
}

// The confined server that vmm-vtpm spawns (its only child).
pid_t ChildOf(pid_t parent) {
  DIR* d = opendir("/proc");
  if (d == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::vector<std::string> f = StatFields(pid);
    if (f.size() > 1 && std::atoi(f[1].c_str()) == parent) found = pid;
  }
  closedir(d);
  return found;
}

int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// CMD_GET_CAPABILITY (swtpm's tpm_ioctl.h): 4 bytes out, result and capabilities back.
bool GetCapability(int fd, int timeout_ms) {
  const uint8_t req[4] = {0, 0, 0, 1};
  if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != 4) return false;
  uint8_t rsp[8];
  size_t got = 0;
  while (got < sizeof(rsp)) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return false;
    ssize_t n = recv(fd, rsp + got, sizeof(rsp) - got, 0);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return rsp[0] == 0 && rsp[1] == 0 && rsp[2] == 0 && rsp[3] == 0;
}

// Whether a fresh connection to `sock` gets a GET_CAPABILITY answer, trying up to `tries`
// times `pause_ms` apart (the server may still be starting, or out of fds).
bool AnswersANewConnection(const std::string& sock, int tries, int pause_ms) {
  for (int i = 0; i < tries; ++i) {
    int fd = Connect(sock);
    const bool answered = fd >= 0 && GetCapability(fd, 2000);
    if (fd >= 0) close(fd);
    if (answered) return true;
    usleep(static_cast<useconds_t>(pause_ms) * 1000);
  }
  return false;
}

size_t CountLines(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

TEST(VtpmStandalone, MoreConnectionsThanFdsNeitherSpinNorFloodTheLogAndServiceResumes) {
  std::string dir = WriteTempFile("standalone.marker", {});
  dir = dir.substr(0, dir.rfind('/'));
  const std::string sock = dir + "/vtpm-standalone.ctrl", log = dir + "/vtpm-standalone.log";
  unlink(sock.c_str());
  pid_t outer = fork();
  ASSERT_GE(outer, 0);
  if (outer == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(126);
    std::string bin = BinDir() + "/vmm-vtpm", ctrl = "unix:" + sock;
    execl(bin.c_str(), "vmm-vtpm", "--ctrl", ctrl.c_str(), nullptr);
    _exit(127);
  }
  struct Cleanup {
    pid_t pid;
    std::vector<int>* fds;
    ~Cleanup() {
      for (int fd : *fds) close(fd);
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  };
  std::vector<int> conns;
  Cleanup cleanup{outer, &conns};

  ASSERT_TRUE(AnswersANewConnection(sock, 100, 50)) << ReadText(log);
  const pid_t server = ChildOf(outer);
  ASSERT_GT(server, 0);

  // As many as it takes (its channel cap) plus its backlog; connect fails with EAGAIN while
  // the backlog is full, so keep trying for a while.
  for (int tries = 0; tries < 300 && conns.size() < 64; ++tries) {
    int fd = Connect(sock);
    if (fd >= 0) {
      conns.push_back(fd);
    } else {
      usleep(10 * 1000);
    }
  }
  // vmm-vtpm's RLIMIT_NOFILE is 32 (sandbox/roles.cc): 24 connections are more than its
  // channel cap (32 less stderr, the listener and SwtpmServer::kFdReserve) plus one.
  ASSERT_GE(conns.size(), 24u) << "could not open enough connections to reach the cap";
  usleep(300 * 1000);  // it accepts what it will

  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  const long before = CpuTicks(server);
  const size_t lines_before = CountLines(ReadText(log), "\n");
  sleep(1);
  const long used = CpuTicks(server) - before;
  const std::string text = ReadText(log);
  EXPECT_LT(used, ticks_per_second / 10) << "the server used " << used << " of " << ticks_per_second
                                         << " ticks in an idle second: it spins";
  EXPECT_LT(CountLines(text, "\n") - lines_before, 5u) << "log lines while idle:\n"
                                                       << text.substr(0, 2000);
  EXPECT_LT(CountLines(text, "accept4"), 5u) << text.substr(0, 2000);
  // The first connection was accepted before any limit was near: it is served.
  EXPECT_TRUE(GetCapability(conns.front(), 5000)) << "no answer on a held channel";

  for (int fd : conns) close(fd);
  conns.clear();
  EXPECT_TRUE(AnswersANewConnection(sock, 50, 100))
      << "no answer on a new connection once the others closed\n"
      << ReadText(log).substr(0, 2000);
}

}  // namespace
}  // namespace vmm::testing
