#include "vmm/formats/vhost_user/socket.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "base/bytes.h"

namespace vmm::vhost_user {
namespace {

// Room for as many fds as the kernel lets one sendmsg carry (SCM_MAX_FD), so a peer that
// sends too many is seen doing it (and every one of them closed) instead of the kernel
// silently dropping the excess behind MSG_CTRUNC.
constexpr size_t kScmMaxFd = 253;

Error ProtocolError(std::string message) {
  return Error(ErrorKind::kProtocol, std::move(message));
}

// Takes ownership of every fd in the control data before looking at anything else, so
// that whatever goes wrong below, they are closed.
Result<void> CollectFds(msghdr& msg, std::vector<UniqueFd>& fds) {
  bool unexpected = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      unexpected = true;
      continue;
    }
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC)
    return ProtocolError("vhost-user: control data was truncated (too many fds?)");
  if (unexpected) return ProtocolError("vhost-user: control data other than SCM_RIGHTS");
  if (fds.size() > kMaxFds)
    return ProtocolError("vhost-user: message arrived with " + std::to_string(fds.size()) +
                         " fds, at most " + std::to_string(kMaxFds) + " are accepted");
  return Ok();
}

// Fills `buf` from the socket, adding any fds that come along to `fds`. Returns how many
// bytes arrived: fewer than buf.size() only when the peer closed the connection.
Result<size_t> ReceiveExactly(int sock, std::span<uint8_t> buf, std::vector<UniqueFd>& fds) {
  size_t got = 0;
  while (got < buf.size()) {
    alignas(cmsghdr) char control[CMSG_SPACE(kScmMaxFd * sizeof(int))];
    iovec iov{buf.data() + got, buf.size() - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("vhost-user: recvmsg");
    }
    RETURN_IF_ERROR(CollectFds(msg, fds));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

}  // namespace

Result<std::optional<RawMessage>> ReadRawMessage(int sock) {
  RawMessage m;
  m.bytes.resize(kHeaderSize);
  ASSIGN_OR_RETURN(size_t got, ReceiveExactly(sock, m.bytes, m.fds));
  if (got == 0 && m.fds.empty()) return std::optional<RawMessage>();
  if (got < kHeaderSize)
    return ProtocolError("vhost-user: peer closed the connection inside a message header (" +
                         std::to_string(got) + " of 12 bytes)");
  // Bound the payload before reading (or allocating for) any of it.
  const uint32_t size = LoadLe<uint32_t>(m.bytes, 8).value_or(0);
  if (size > kMaxPayloadSize)
    return ProtocolError("vhost-user: request " +
                         std::to_string(LoadLe<uint32_t>(m.bytes, 0).value_or(0)) +
                         " announces a payload of " + std::to_string(size) +
                         " bytes, the largest legal one is " + std::to_string(kMaxPayloadSize));
  m.bytes.resize(kHeaderSize + size);
  ASSIGN_OR_RETURN(got, ReceiveExactly(sock, std::span(m.bytes).subspan(kHeaderSize), m.fds));
  if (got < size)
    return ProtocolError("vhost-user: peer closed the connection inside a payload (" +
                         std::to_string(got) + " of " + std::to_string(size) + " bytes)");
  return std::optional<RawMessage>(std::move(m));
}

Result<std::optional<Message>> ReceiveMessage(int sock, Direction direction) {
  ASSIGN_OR_RETURN(std::optional<RawMessage> raw, ReadRawMessage(sock));
  if (!raw) return std::optional<Message>();
  ASSIGN_OR_RETURN(Message m, Decode(raw->bytes, std::move(raw->fds), direction));
  return std::optional<Message>(std::move(m));
}

Result<void> SendMessage(int sock, std::span<const uint8_t> bytes, std::span<const int> fds) {
  if (fds.size() > kMaxFds)
    return Error(ErrorKind::kInternal, "vhost-user: more than 8 fds in one message");
  if (bytes.empty()) return Error(ErrorKind::kInternal, "vhost-user: empty message");
  size_t sent = 0;
  while (sent < bytes.size()) {
    alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))] = {};
    iovec iov{const_cast<uint8_t*>(bytes.data()) + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sent == 0 && !fds.empty()) {  // the fds ride on the first byte, once
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("vhost-user: sendmsg");
    }
    sent += static_cast<size_t>(n);
  }
  return Ok();
}

}  // namespace vmm::vhost_user
