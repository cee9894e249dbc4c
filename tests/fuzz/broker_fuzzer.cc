// Arbitrary bytes as a key broker message (attestation/broker_protocol.h), read by either side:
// the broker (KeyBroker::Handle, which parses requests and attestations) and the client (the
// challenge, response and refusal parsers, and opening a sealed secret). Checked: no crash; a
// refusal says why; what parses is within the limits and serializes to text that parses to the
// same message; a sealed secret from the input never opens under a fresh client key.
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "attestation/broker.h"
#include "attestation/broker_protocol.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace vmm::attestation;

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

KeyBroker& Broker() {
  static KeyBroker* broker = [] {
    BrokerConfig config;
    config.secrets["disk"] = {1, 2, 3};
    config.max_outstanding = 8;
    return new KeyBroker(std::move(config));
  }();
  return *broker;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);

  BrokerAnswer answer = Broker().Handle(in, "fuzz", KeyBroker::Clock::now());
  CHECK(!answer.released);  // no challenge the input could know was handed out
  CHECK(MessageType(Span(answer.body)).has_value());

  if (auto m = ParseRequest(in); m.has_value()) {
    CHECK(CheckSecretName(m->secret).has_value());
    auto again = ParseRequest(Span(SerializeRequest(*m)));
    CHECK(again.has_value() && again->secret == m->secret);
  } else {
    CHECK(!m.error().message().empty());
  }
  if (auto m = ParseChallenge(in); m.has_value()) {
    CHECK(m->nonce.size() == kBrokerNonceBytes);
    auto again = ParseChallenge(Span(SerializeChallenge(*m)));
    CHECK(again.has_value() && again->nonce == m->nonce && again->expires_in == m->expires_in);
  } else {
    CHECK(!m.error().message().empty());
  }
  if (auto m = ParseAttestation(in); m.has_value()) {
    CHECK(m->public_key.size() == kP256PointBytes && m->nonce.size() == kBrokerNonceBytes);
    auto again = ParseAttestation(Span(SerializeAttestation(*m)));
    CHECK(again.has_value() && again->evidence == m->evidence &&
          again->public_key == m->public_key);
  } else {
    CHECK(!m.error().message().empty());
  }
  if (auto m = ParseResponse(in); m.has_value()) {
    CHECK(m->reason.size() <= kMaxReasonBytes && m->ear.size() <= kMaxEarBytes);
    auto again = ParseResponse(Span(SerializeResponse(*m)));
    CHECK(again.has_value() && again->verdict == m->verdict && again->reason == m->reason &&
          again->sealed.has_value() == m->sealed.has_value());
    if (m->sealed) {
      CHECK(m->sealed->ciphertext.size() <= kMaxSecretBytes);
      static auto key = NewEphemeralKey();
      CHECK(key.has_value());
      CHECK(!OpenSecret(*m->sealed, key->get(), std::vector<uint8_t>(32), "disk").has_value());
    }
  } else {
    CHECK(!m.error().message().empty());
  }
  if (auto m = ParseRefused(in); m.has_value()) {
    auto again = ParseRefused(Span(SerializeRefused(*m)));
    CHECK(again.has_value() && again->reason == m->reason);
  }
  return 0;
}
