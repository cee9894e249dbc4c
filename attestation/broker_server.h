// The key broker's serving loop (ARCHITECTURE.md §8 "Key broker"): one connection at a time,
// one frame in and one frame out, each connection bounded by a deadline and the frame size, so
// that a slow or hostile client holds the broker for at most `connection_timeout`.
//
//   ASSIGN_OR_RETURN(UniqueFd listener, ListenBroker(address));
//   ServeBroker(listener.get(), broker, log_fd, stop, {});
#pragma once

#include <atomic>
#include <chrono>

#include "attestation/broker.h"
#include "base/result.h"

namespace vmm::attestation {

struct ServeLimits {
  std::chrono::seconds connection_timeout{10};
  size_t max_frame = kMaxBrokerMessageBytes;
};

// Serves until `stop` is set (checked at least every 200 ms) or accept fails for a reason
// other than a signal. Each decision's log line is appended to `log_fd` (-1: none).
Result<void> ServeBroker(int listener, KeyBroker& broker, int log_fd, const std::atomic<bool>& stop,
                         const ServeLimits& limits);

}  // namespace vmm::attestation
