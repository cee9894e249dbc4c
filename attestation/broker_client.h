// The key broker's client (ARCHITECTURE.md §8 "Key broker"; README "Key broker"): asks for a
// secret, answers the challenge with evidence whose qualifying data binds the broker's nonce
// to a fresh P-256 key, and opens the sealed answer with that key. How the evidence is made,
// and how messages travel, is the caller's: `vmm attest --broker` quotes through the manager's
// API and sends frames over a socket (broker_io.h); a test may do either in process.
//
//   BrokerTransport send = [&](std::string_view body) { return Exchange(addr, body, 30); };
//   QuoteForData quote = [&](std::span<const uint8_t> data) { return MyEvidence(data); };
//   ASSIGN_OR_RETURN(BrokerOutcome out, FetchSecret("disk-key", send, quote));
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::attestation {

// One message to the broker and its answer (one frame each way).
using BrokerTransport = std::function<Result<std::string>(std::string_view body)>;
// A vmm-evidence/1 bundle whose quote's qualifying data is `data` (32 bytes).
using QuoteForData = std::function<Result<std::vector<uint8_t>>(std::span<const uint8_t> data)>;

struct BrokerOutcome {
  std::vector<uint8_t> secret;  // released and opened
  std::string verdict;          // "affirming"
  std::string ear;              // the broker's EAR claims set (JSON text)
};

// kProtocol errors for a refusal ("the broker refused: <reason>"), a withheld secret ("the
// broker withheld the secret (<verdict>): <reason>"), a malformed answer, or a sealed secret
// that does not open (altered on the way).
Result<BrokerOutcome> FetchSecret(std::string_view secret_name, const BrokerTransport& send,
                                  const QuoteForData& quote);

}  // namespace vmm::attestation
