// The key broker's transport (ARCHITECTURE.md §8 "Key broker"): each message of
// broker_protocol.h travels as one frame, a 4-byte big-endian length and that many bytes of
// JSON, on a stream socket (a unix socket or TCP). A connection carries one frame each way: the
// client sends, the broker answers and closes. Reads and writes are bounded in size
// (kMaxBrokerMessageBytes) and in time (one deadline for the whole frame).
//
//   ASSIGN_OR_RETURN(BrokerAddress addr, ParseBrokerAddress("unix:/run/broker.sock"));
//   ASSIGN_OR_RETURN(std::string answer, Exchange(addr, SerializeRequest(req), 30));
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm::attestation {

struct BrokerAddress {
  enum class Kind { kUnix, kTcp } kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kTcp: a numeric IPv4 address
  uint16_t port = 0;
  std::string ToString() const;
};

// "unix:PATH" or "tcp:A.B.C.D:PORT" (PORT 1..65535).
Result<BrokerAddress> ParseBrokerAddress(std::string_view text);

using Deadline = std::chrono::steady_clock::time_point;

// One frame, at most `max` bytes of body; kProtocol for a short or oversized frame, a
// timeout or a peer that closed early.
Result<std::string> ReadFrame(int fd, size_t max, Deadline deadline);
Result<void> WriteFrame(int fd, std::string_view body, Deadline deadline);

// A listening socket: a unix socket (mode 0600, a stale socket replaced) or TCP (SO_REUSEADDR).
Result<UniqueFd> ListenBroker(const BrokerAddress& address);
Result<UniqueFd> ConnectBroker(const BrokerAddress& address, Deadline deadline);

// Connects, sends `body`, reads one answer frame, closes.
Result<std::string> Exchange(const BrokerAddress& address, std::string_view body,
                             int timeout_seconds);

// The peer of an accepted connection, for the log: "unix:pid=P,uid=U" or "tcp:A.B.C.D:PORT".
std::string DescribePeer(int fd);

}  // namespace vmm::attestation
