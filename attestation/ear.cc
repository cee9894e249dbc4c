#include "attestation/ear.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include "attestation/codec.h"
#include "attestation/ossl.h"
#include "base/ecdsa_p256.h"
#include "base/version.h"

namespace vmm::attestation {
namespace {

using Ordered = nlohmann::ordered_json;

Ordered Claims(const VerifyResult& r, std::span<const uint8_t> nonce, time_t iat) {
  Ordered vector = Ordered::object();
  for (size_t k = 1; k < r.vector.size(); ++k) {
    if (r.vector[k] != 0) vector[std::string(ClaimName(static_cast<Claim>(k)))] = r.vector[k];
  }
  Ordered checks = Ordered::array();
  for (const Check& c : r.checks) {
    Ordered o = {
        {"name", c.name}, {"status", std::string(CheckStatusName(c.status))}, {"reason", c.reason}};
    if (c.pcr) o["pcr"] = *c.pcr;
    if (c.event_index) o["event"] = *c.event_index;
    checks.push_back(std::move(o));
  }
  Ordered sub = {{"ear.status", std::string(EarStatusName(r.status))},
                 {"ear.trustworthiness-vector", std::move(vector)}};
  if (!r.policy_id.empty()) sub["ear.appraisal-policy-id"] = r.policy_id;
  sub["vmm.checks"] = std::move(checks);
  if (!r.vm_id.empty()) sub["vmm.vm-id"] = r.vm_id;
  if (r.quote_clock) {
    sub["vmm.quote"] = {{"clock", r.quote_clock->clock},
                        {"reset_count", r.quote_clock->reset_count},
                        {"restart_count", r.quote_clock->restart_count},
                        {"safe", r.quote_clock->safe},
                        {"firmware_version", r.quote_clock->firmware_version}};
  }
  Ordered doc = {{"eat_profile", std::string(kEarProfile)},
                 {"iat", static_cast<int64_t>(iat)},
                 {"ear.verifier-id",
                  {{"developer", "vmm"}, {"build", std::string("vmm-verify ") + VMM_VERSION}}}};
  // EAT's eat_nonce is 8 to 64 bytes (RFC 9711 §4.1); other nonces are still in vmm.checks.
  if (nonce.size() >= 8 && nonce.size() <= 64) doc["eat_nonce"] = Base64Url(nonce);
  doc["submods"] = {{std::string(kEarSubmod), std::move(sub)}};
  return doc;
}

std::string Dump(const Ordered& doc, int indent) {
  return doc.dump(indent, ' ', false, Ordered::error_handler_t::replace);
}

}  // namespace

std::string Base64Url(std::span<const uint8_t> bytes) {
  std::string out = EncodeBase64(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string EarToJson(const VerifyResult& result, std::span<const uint8_t> nonce, time_t iat) {
  return Dump(Claims(result, nonce, iat), 2) + "\n";
}

Result<std::string> EarToJwt(const VerifyResult& result, std::span<const uint8_t> nonce, time_t iat,
                             std::string_view key_pem) {
  BioPtr bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key)
    return OpenSslError(ErrorKind::kInvalidArgument, "the signing key is not a PEM private key");
  char group[32] = {};
  size_t len = 0;
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC ||
      EVP_PKEY_get_group_name(key.get(), group, sizeof(group), &len) != 1 ||
      (std::string_view(group) != "prime256v1" && std::string_view(group) != "P-256")) {
    return Error(ErrorKind::kInvalidArgument, "the signing key is not an ECC P-256 key (ES256)");
  }
  std::string header = R"({"alg":"ES256","typ":"JWT"})";
  std::string payload = Dump(Claims(result, nonce, iat), -1);
  auto b64 = [](std::string_view s) {
    return Base64Url(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  };
  std::string input = b64(header) + "." + b64(payload);
  // JWS ES256 wants r||s (RFC 7518 §3.4), not DER: SignEcdsaP256 gives that.
  auto sig = SignEcdsaP256(key.get(), input);
  if (!sig) return sig.error().Wrap("signing the EAR");
  return input + "." + Base64Url(*sig);
}

}  // namespace vmm::attestation
