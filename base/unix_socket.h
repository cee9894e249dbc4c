// Unix-domain sockets: bytes with fds attached (SCM_RIGHTS), and listening on a path.
//
//   ssize_t n = SendWithFds(sock, bytes, fds);            // one sendmsg, MSG_NOSIGNAL
//   Received r = ReceiveWithFds(sock, buf, /*max_fds=*/8);
//   if (r.n < 0) ... r.error ...;  r.fds owns every fd that arrived, whatever else went wrong
//   ASSIGN_OR_RETURN(UniqueFd l, ListenUnix(path, /*backlog=*/4));
//   UniqueFd c = AcceptConnection(l.get());                // accept4, SOCK_CLOEXEC
//
// These are single system calls, not loops: callers keep their own policy for short
// transfers, EINTR, EAGAIN and ENOTSOCK. Syscalls: sendmsg, recvmsg (MSG_CMSG_CLOEXEC is
// always added), accept4; ListenUnix also lstat, unlink, socket, bind, listen.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm {

// The most fds one sendmsg can carry (the kernel's SCM_MAX_FD).
inline constexpr size_t kScmMaxFd = 253;

// One sendmsg of `bytes` with `fds` (borrowed; none when empty) attached as SCM_RIGHTS.
// MSG_NOSIGNAL is always added to `flags`: a closed peer is EPIPE, never SIGPIPE. Returns
// what sendmsg returned, errno set when -1 (EINVAL for more than kScmMaxFd fds).
ssize_t SendWithFds(int sock, std::span<const uint8_t> bytes, std::span<const int> fds = {},
                    int flags = 0);

struct Received {
  ssize_t n = -1;             // recvmsg's result: bytes read, 0 at EOF, -1 on error
  int error = 0;              // errno when n < 0
  std::vector<UniqueFd> fds;  // every fd that arrived, owned: closed with this
  bool truncated = false;     // MSG_CTRUNC: more fds came than there was room for (the
                              // kernel closed the excess)
  bool unexpected = false;    // control data other than SCM_RIGHTS (its fds are in `fds`)
  // Control data other than at most `max_fds` SCM_RIGHTS fds.
  bool bad_control() const { return truncated || unexpected; }
};

// One recvmsg into `buf` with room for `max_fds` fds (at most kScmMaxFd) and
// MSG_CMSG_CLOEXEC added to `flags`. Takes ownership of every fd before anything is judged,
// so that none leaks on any path.
Received ReceiveWithFds(int sock, std::span<uint8_t> buf, size_t max_fds, int flags = 0);

// A SOCK_STREAM socket (close-on-exec) bound to `path` and listening. A stale socket file
// at the path is replaced; any other file there is kInvalidArgument, as is a path that is
// empty or too long for sockaddr_un. A failed bind is `bind_failure` (callers that take the
// path from the user may call it kInvalidArgument); other failed syscalls are kSystem.
Result<UniqueFd> ListenUnix(const std::string& path, int backlog,
                            ErrorKind bind_failure = ErrorKind::kSystem);

// accept4(listener) with SOCK_CLOEXEC, and SOCK_NONBLOCK when `nonblocking`. Invalid on
// failure, errno set.
UniqueFd AcceptConnection(int listener, bool nonblocking = false);

}  // namespace vmm
