#include "attestation/broker_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "attestation/broker_protocol.h"
#include "base/unix_socket.h"

namespace vmm::attestation {
namespace {

// Waits until `fd` is ready for `events` or the deadline passes.
Result<void> WaitFor(int fd, short events, Deadline deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Error(ErrorKind::kProtocol, "timed out");
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60000)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("poll");
    if (n > 0) return Ok();
  }
}

Result<void> ReadExactly(int fd, uint8_t* out, size_t len, Deadline deadline) {
  size_t done = 0;
  while (done < len) {
    RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline));
    const ssize_t n = recv(fd, out + done, len - done, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ErrnoError("recv");
    if (n == 0) return Error(ErrorKind::kProtocol, "the peer closed the connection mid-message");
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<void> WriteExactly(int fd, const uint8_t* data, size_t len, Deadline deadline) {
  size_t done = 0;
  while (done < len) {
    RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline));
    const ssize_t n = send(fd, data + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ErrnoError("send");
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<sockaddr_in> TcpAddress(const BrokerAddress& a) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(a.port);
  if (inet_pton(AF_INET, a.host.c_str(), &sin.sin_addr) != 1) {
    return InvalidArgument("'" + a.host + "' is not a numeric IPv4 address");
  }
  return sin;
}

}  // namespace

std::string BrokerAddress::ToString() const {
  return kind == Kind::kUnix ? "unix:" + path : "tcp:" + host + ":" + std::to_string(port);
}

Result<BrokerAddress> ParseBrokerAddress(std::string_view text) {
  BrokerAddress a;
  if (text.starts_with("unix:")) {
    a.kind = BrokerAddress::Kind::kUnix;
    a.path = std::string(text.substr(5));
    if (a.path.empty() || a.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return InvalidArgument("unix:PATH: the path is empty or too long");
    }
    return a;
  }
  if (text.starts_with("tcp:")) {
    std::string_view rest = text.substr(4);
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return InvalidArgument("tcp:HOST:PORT: no port");
    a.kind = BrokerAddress::Kind::kTcp;
    a.host = std::string(rest.substr(0, colon));
    std::string_view port = rest.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return InvalidArgument("tcp:HOST:PORT: the port must be 1 to 65535");
    }
    a.port = static_cast<uint16_t>(value);
    if (auto sin = TcpAddress(a); !sin) return sin.error();
    return a;
  }
  return InvalidArgument("'" + std::string(text) + "': give unix:PATH or tcp:A.B.C.D:PORT");
}

Result<std::string> ReadFrame(int fd, size_t max, Deadline deadline) {
  uint8_t header[4];
  RETURN_IF_ERROR(ReadExactly(fd, header, sizeof(header), deadline));
  const uint32_t len = static_cast<uint32_t>(header[0]) << 24 |
                       static_cast<uint32_t>(header[1]) << 16 |
                       static_cast<uint32_t>(header[2]) << 8 | header[3];
  if (len > max) {
    return Error(ErrorKind::kProtocol, "a message of " + std::to_string(len) +
                                           " bytes is larger than the limit of " +
                                           std::to_string(max));
  }
  std::string body(len, '\0');
  RETURN_IF_ERROR(ReadExactly(fd, reinterpret_cast<uint8_t*>(body.data()), len, deadline));
  return body;
}

Result<void> WriteFrame(int fd, std::string_view body, Deadline deadline) {
  if (body.size() > UINT32_MAX) return InvalidArgument("message too large to frame");
  const uint32_t len = static_cast<uint32_t>(body.size());
  const uint8_t header[4] = {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                             static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  RETURN_IF_ERROR(WriteExactly(fd, header, sizeof(header), deadline));
  return WriteExactly(fd, reinterpret_cast<const uint8_t*>(body.data()), body.size(), deadline);
}

Result<UniqueFd> ListenBroker(const BrokerAddress& address) {
  if (address.kind == BrokerAddress::Kind::kUnix) {
    // Created 0600 (the umask is process-wide: vmm-verify serve is single-threaded here), so
    // that no other user can connect between bind and chmod.
    const mode_t old_mask = umask(0177);
    auto fd = ListenUnix(address.path, 64, ErrorKind::kInvalidArgument);
    umask(old_mask);
    if (!fd) return fd.error();
    if (chmod(address.path.c_str(), 0600) != 0) return ErrnoError("chmod " + address.path);
    return fd;
  }
  ASSIGN_OR_RETURN(sockaddr_in sin, TcpAddress(address));
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket");
  const int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
    return Error(ErrorKind::kInvalidArgument, "bind " + address.ToString(), errno);
  }
  if (listen(fd.get(), 64) != 0) return ErrnoError("listen");
  return fd;
}

Result<UniqueFd> ConnectBroker(const BrokerAddress& address, Deadline deadline) {
  UniqueFd fd;
  int rc = -1;
  if (address.kind == BrokerAddress::Kind::kUnix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, address.path.data(), address.path.size());
    fd.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return ErrnoError("socket");
    rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  } else {
    ASSIGN_OR_RETURN(sockaddr_in sin, TcpAddress(address));
    fd.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return ErrnoError("socket");
    rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  }
  if (rc != 0 && errno != EINPROGRESS && errno != EAGAIN) {
    return ErrnoError("connecting to the broker at " + address.ToString());
  }
  if (rc != 0) {
    RETURN_IF_ERROR(WaitFor(fd.get(), POLLOUT, deadline));
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return Error(ErrorKind::kSystem, "connecting to the broker at " + address.ToString(), err);
    }
  }
  return fd;
}

Result<std::string> Exchange(const BrokerAddress& address, std::string_view body,
                             int timeout_seconds) {
  const Deadline deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  ASSIGN_OR_RETURN(UniqueFd fd, ConnectBroker(address, deadline));
  RETURN_IF_ERROR(WriteFrame(fd.get(), body, deadline));
  auto answer = ReadFrame(fd.get(), kMaxBrokerMessageBytes, deadline);
  if (!answer) return answer.error().Wrap("the broker's answer");
  return answer;
}

std::string DescribePeer(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family == AF_UNIX) {
    ucred cred{};
    socklen_t clen = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
      return "unix:pid=" + std::to_string(cred.pid) + ",uid=" + std::to_string(cred.uid);
    }
    return "unix";
  }
  sockaddr_in peer{};
  len = sizeof(peer);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
      peer.sin_family == AF_INET) {
    char host[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &peer.sin_addr, host, sizeof(host));
    return std::string("tcp:") + host + ":" + std::to_string(ntohs(peer.sin_port));
  }
  return "unknown";
}

}  // namespace vmm::attestation
