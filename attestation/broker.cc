#include "attestation/broker.h"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "attestation/ear.h"
#include "attestation/verify.h"
#include "base/sha256.h"

namespace vmm::attestation {
namespace {

using json = nlohmann::json;

// Why a verdict is not affirming, in one line: the first failed check, else the first skipped.
std::string WhyNot(const VerifyResult& result) {
  for (CheckStatus wanted : {CheckStatus::kFail, CheckStatus::kSkip}) {
    for (const Check& c : result.checks) {
      if (c.status == wanted) {
        return std::string(wanted == CheckStatus::kFail ? "failed " : "skipped ") + c.name + ": " +
               c.reason;
      }
    }
  }
  return "not affirming";
}

std::string Truncated(std::string s) {
  if (s.size() > kMaxReasonBytes) s.resize(kMaxReasonBytes);
  return s;
}

}  // namespace

std::string BrokerLogLine(KeyBroker::Clock::time_point now, const std::string& peer,
                          const std::string& secret, std::span<const uint8_t> nonce,
                          const std::string& verdict, const std::string& reason,
                          const std::string& ear) {
  const time_t t = KeyBroker::Clock::to_time_t(now);
  tm utc{};
  gmtime_r(&t, &utc);
  char when[32];
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &utc);
  json ear_doc = ear.empty() ? json(nullptr) : json::parse(ear, nullptr, false);
  if (ear_doc.is_discarded()) ear_doc = ear;
  json line{{"time", when},
            {"peer", peer},
            {"secret", secret},
            {"nonce_sha256", nonce.empty() ? json(nullptr) : json(Sha256Hex(nonce))},
            {"verdict", verdict},
            {"reason", reason},
            {"ear", ear_doc}};
  return line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

KeyBroker::KeyBroker(BrokerConfig config) : config_(std::move(config)) {}

BrokerAnswer KeyBroker::Handle(std::span<const uint8_t> body, const std::string& peer,
                               Clock::time_point now) {
  auto type = MessageType(body);
  if (!type) return Refuse(peer, "", {}, type.error().message(), now);
  if (*type == "request") {
    auto m = ParseRequest(body);
    if (!m) return Refuse(peer, "", {}, m.error().message(), now);
    return Request(*m, peer, now);
  }
  if (*type == "attestation") {
    auto m = ParseAttestation(body);
    if (!m) return Refuse(peer, "", {}, m.error().message(), now);
    return Attest(*m, peer, now);
  }
  return Refuse(
      peer, "", {},
      "message: a client sends \"request\" or \"attestation\", not \"" + Truncated(*type) + "\"",
      now);
}

BrokerAnswer KeyBroker::Refuse(const std::string& peer, const std::string& secret,
                               std::span<const uint8_t> nonce, const std::string& reason,
                               Clock::time_point now) {
  BrokerAnswer a;
  a.body = SerializeRefused({Truncated(reason)});
  a.log_line = BrokerLogLine(now, peer, secret, nonce, "refused", Truncated(reason), "");
  return a;
}

BrokerAnswer KeyBroker::Request(const RequestMessage& m, const std::string& peer,
                                Clock::time_point now) {
  if (!config_.secrets.contains(m.secret)) {
    return Refuse(peer, m.secret, {}, "no secret named \"" + m.secret + "\"", now);
  }
  std::erase_if(challenges_, [now](const auto& entry) { return entry.second.expires <= now; });
  if (challenges_.size() >= config_.max_outstanding) {
    return Refuse(peer, m.secret, {},
                  "too many outstanding challenges (" + std::to_string(challenges_.size()) +
                      "): try again later",
                  now);
  }
  std::vector<uint8_t> nonce(kBrokerNonceBytes);
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
    return Refuse(peer, m.secret, {}, "the broker could not draw a random nonce", now);
  }
  challenges_[nonce] = {m.secret, now + config_.nonce_lifetime};
  BrokerAnswer a;
  a.body = SerializeChallenge({nonce, static_cast<uint32_t>(config_.nonce_lifetime.count())});
  return a;
}

BrokerAnswer KeyBroker::Attest(const AttestationMessage& m, const std::string& peer,
                               Clock::time_point now) {
  auto it = challenges_.find(m.nonce);
  if (it == challenges_.end()) {
    return Refuse(peer, m.secret, m.nonce,
                  "nonce unknown or already used (each challenge answers once)", now);
  }
  const Outstanding challenge = it->second;
  challenges_.erase(it);  // single use, whatever follows
  if (challenge.expires <= now) {
    return Refuse(
        peer, m.secret, m.nonce,
        "nonce expired (challenges live " + std::to_string(config_.nonce_lifetime.count()) + " s)",
        now);
  }
  if (challenge.secret != m.secret) {
    return Refuse(
        peer, m.secret, m.nonce,
        "the challenge was for secret \"" + challenge.secret + "\", not \"" + m.secret + "\"", now);
  }
  if (auto key = KeyFromPoint(m.public_key); !key) {
    return Refuse(peer, m.secret, m.nonce, key.error().message(), now);
  }
  const std::vector<uint8_t> binding = BindingData(m.nonce, m.public_key);
  VerifyOptions options{config_.ca_pem, binding, &config_.policy, Clock::to_time_t(now),
                        &chain_cache_};
  const VerifyResult result = VerifyBundle(m.evidence, options);
  const std::string ear = EarToJson(result, binding, Clock::to_time_t(now));
  ResponseMessage response;
  response.verdict = std::string(EarStatusName(result.status));
  response.ear = ear;
  BrokerAnswer a;
  if (result.status == EarStatus::kAffirming) {
    auto sealed = SealSecret(config_.secrets.at(m.secret), m.nonce, m.secret, m.public_key);
    if (!sealed) {
      response.reason = Truncated("affirming, but sealing failed: " + sealed.error().message());
    } else {
      response.reason = "affirming: secret released";
      response.sealed = std::move(*sealed);
      a.released = true;
    }
  } else {
    response.reason = Truncated(WhyNot(result));
  }
  a.body = SerializeResponse(response);
  a.log_line = BrokerLogLine(now, peer, m.secret, m.nonce,
                             a.released ? "released" : "withheld (" + response.verdict + ")",
                             response.reason, ear);
  return a;
}

}  // namespace vmm::attestation
