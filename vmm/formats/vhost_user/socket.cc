#include "vmm/formats/vhost_user/socket.h"

#include <cerrno>
#include <string>
#include <utility>

#include "base/bytes.h"
#include "base/unix_socket.h"

namespace vmm::vhost_user {
namespace {

Error ProtocolError(std::string message) { return Error(ErrorKind::kProtocol, std::move(message)); }

// Fills `buf` from the socket, adding any fds that come along to `fds`. Returns how many
// bytes arrived: fewer than buf.size() only when the peer closed the connection. Room for
// as many fds as one sendmsg can carry (kScmMaxFd), so a peer that sends too many is seen
// doing it (and every one of them closed) instead of the kernel silently dropping the
// excess behind MSG_CTRUNC.
Result<size_t> ReceiveExactly(int sock, std::span<uint8_t> buf, std::vector<UniqueFd>& fds) {
  size_t got = 0;
  while (got < buf.size()) {
    Received r = ReceiveWithFds(sock, buf.subspan(got), kScmMaxFd);
    if (r.n < 0) {
      if (r.error == EINTR) continue;
      return Error(ErrorKind::kSystem, "vhost-user: recvmsg", r.error);
    }
    for (UniqueFd& fd : r.fds) fds.push_back(std::move(fd));
    if (r.truncated) return ProtocolError("vhost-user: control data was truncated (too many fds?)");
    if (r.unexpected) return ProtocolError("vhost-user: control data other than SCM_RIGHTS");
    if (fds.size() > kMaxFds)
      return ProtocolError("vhost-user: message arrived with " + std::to_string(fds.size()) +
                           " fds, at most " + std::to_string(kMaxFds) + " are accepted");
    if (r.n == 0) break;
    got += static_cast<size_t>(r.n);
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
    // The fds ride on the first byte, once.
    const ssize_t n =
        SendWithFds(sock, bytes.subspan(sent), sent == 0 ? fds : std::span<const int>());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("vhost-user: sendmsg");
    }
    sent += static_cast<size_t>(n);
  }
  return Ok();
}

}  // namespace vmm::vhost_user
