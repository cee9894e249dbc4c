// The key broker's decisions (ARCHITECTURE.md §8 "Key broker"; SECURITY.md "Key broker"):
// which challenges are outstanding, and whether an attestation earns its secret. No sockets:
// broker_server.h feeds it frames and writes its answers and log lines.
//
//   KeyBroker broker(std::move(config));
//   BrokerAnswer a = broker.Handle(frame_body, "unix:pid=12,uid=1000", now);
//   WriteFrame(fd, a.body, deadline); if (!a.log_line.empty()) log << a.log_line;
//
// A challenge's nonce is 32 random bytes, used once (an attestation that names it removes it
// whatever the outcome), valid for `nonce_lifetime`, and at most `max_outstanding` exist at a
// time (the oldest expired ones go first; beyond that a request is refused). A secret is
// released only when the evidence, verified as vmm-verify verifies it with the quote's
// qualifying data required to be BindingData(nonce, client key), is affirming.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/broker_protocol.h"
#include "attestation/chain_cache.h"

namespace vmm::attestation {

struct BrokerConfig {
  std::string ca_pem;
  Policy policy;
  std::map<std::string, std::vector<uint8_t>> secrets;  // name -> bytes
  std::chrono::seconds nonce_lifetime{60};
  size_t max_outstanding = 1024;
};

struct BrokerAnswer {
  std::string body;      // the frame to send back
  std::string log_line;  // one JSON line (with '\n'); empty for a challenge handed out
  bool released = false;
};

class KeyBroker {
 public:
  using Clock = std::chrono::system_clock;
  explicit KeyBroker(BrokerConfig config);

  // Any frame from a client: a request or an attestation; anything else is refused.
  BrokerAnswer Handle(std::span<const uint8_t> body, const std::string& peer,
                      Clock::time_point now);

  size_t outstanding() const { return challenges_.size(); }

 private:
  struct Outstanding {
    std::string secret;
    Clock::time_point expires;
  };
  BrokerAnswer Request(const RequestMessage& m, const std::string& peer, Clock::time_point now);
  BrokerAnswer Attest(const AttestationMessage& m, const std::string& peer, Clock::time_point now);
  BrokerAnswer Refuse(const std::string& peer, const std::string& secret,
                      std::span<const uint8_t> nonce, const std::string& reason,
                      Clock::time_point now);

  BrokerConfig config_;
  ChainCache chain_cache_;
  std::map<std::vector<uint8_t>, Outstanding> challenges_;  // nonce -> what it was for
};

// The log line: {"time","peer","secret","nonce_sha256","verdict","reason","ear"} and '\n'.
// `ear` is the EAR claims set as JSON text, or "" for none (written as null).
std::string BrokerLogLine(KeyBroker::Clock::time_point now, const std::string& peer,
                          const std::string& secret, std::span<const uint8_t> nonce,
                          const std::string& verdict, const std::string& reason,
                          const std::string& ear);

}  // namespace vmm::attestation
