// Moving vhost-user messages over a connected AF_UNIX SOCK_STREAM socket, fds included.
//
//   ASSIGN_OR_RETURN(std::optional<Message> m, ReceiveMessage(sock, Direction::kRequest));
//   if (!m) return Ok();  // the front-end hung up between messages
//
// For blocking sockets, no threads: a call returns once a whole message has moved, retrying
// EINTR and short reads and writes. EAGAIN (an SO_RCVTIMEO/SO_SNDTIMEO deadline, or a
// non-blocking socket) is an Error, so a deadline on the socket bounds how long a peer that
// stops mid-message can stall us. The socket is borrowed. Received fds are owned by the
// returned RawMessage/Message and are closed on every error path, including the surplus
// when a peer sends more than kMaxFds.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/formats/vhost_user/message.h"

namespace vmm::vhost_user {

// One message as it came off the socket: a header and exactly `size` payload bytes, with
// every fd that arrived alongside them. Nothing beyond the size bound is checked yet.
struct RawMessage {
  std::vector<uint8_t> bytes;
  std::vector<UniqueFd> fds;
};

// Reads one message. std::nullopt: orderly EOF before its first byte. Errors: kSystem for
// failed syscalls; kProtocol for EOF inside a message, a size field above kMaxPayloadSize
// (checked before any payload is read), more than kMaxFds fds, truncated or unexpected
// control data.
Result<std::optional<RawMessage>> ReadRawMessage(int sock);

// ReadRawMessage, then Decode for `direction`.
Result<std::optional<Message>> ReceiveMessage(int sock, Direction direction);

// Sends `bytes` (from EncodeRequest/EncodeReply) with `fds` (borrowed, at most kMaxFds)
// attached to its first byte. Never raises SIGPIPE: a closed peer is an EPIPE Error.
Result<void> SendMessage(int sock, std::span<const uint8_t> bytes, std::span<const int> fds = {});

}  // namespace vmm::vhost_user
