#include "attestation/broker_protocol.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <set>

#include "attestation/codec.h"
#include "base/hex.h"
#include "base/strict_json.h"

namespace vmm::attestation {
namespace {

using json = nlohmann::json;
using KdfPtr = OpenSslPtr<EVP_KDF, EVP_KDF_free>;
using KdfCtxPtr = OpenSslPtr<EVP_KDF_CTX, EVP_KDF_CTX_free>;

constexpr size_t kIvBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr std::string_view kContextLabel = "vmm-broker/1 aes-256-gcm";

Error CryptoError(const std::string& what) {
  std::string message = what;
  char buf[256];
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof(buf));
    message += std::string(": ") + buf;
  }
  return Error(ErrorKind::kProtocol, message);
}

std::string B64(std::span<const uint8_t> bytes) { return EncodeBase64(bytes); }

// A JSON object with exactly `keys`; errors name the message and the key.
Result<json> ParseObject(std::span<const uint8_t> body, std::string_view what,
                         const std::set<std::string>& keys,
                         const std::set<std::string>& optional = {}) {
  const std::string name(what);
  if (body.size() > kMaxBrokerMessageBytes) {
    return Error(ErrorKind::kProtocol,
                 name + ": larger than " + std::to_string(kMaxBrokerMessageBytes) + " bytes");
  }
  std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
  if (!ValidUtf8(text)) return Error(ErrorKind::kProtocol, name + ": not UTF-8");
  StrictJson parsed = ParseStrictJson(text, 4);
  switch (parsed.problem) {
    case StrictJson::Problem::kNone:
      break;
    case StrictJson::Problem::kTooDeep:
      return Error(ErrorKind::kProtocol, name + ": nested too deeply");
    case StrictJson::Problem::kRepeatedKey:
      return Error(ErrorKind::kProtocol, name + ": key \"" + parsed.repeated_key + "\" repeated");
    case StrictJson::Problem::kInvalid:
      return Error(ErrorKind::kProtocol, name + ": not JSON");
  }
  if (!parsed.doc.is_object()) return Error(ErrorKind::kProtocol, name + ": not a JSON object");
  for (const auto& [key, value] : parsed.doc.items()) {
    if (!keys.contains(key) && !optional.contains(key)) {
      return Error(ErrorKind::kProtocol, name + ": unknown key \"" + key + "\"");
    }
  }
  for (const std::string& key : keys) {
    if (!parsed.doc.contains(key)) {
      return Error(ErrorKind::kProtocol, name + ": missing key \"" + key + "\"");
    }
  }
  return std::move(parsed.doc);
}

Result<std::string> GetString(const json& doc, const std::string& key, std::string_view what,
                              size_t max) {
  const json& v = doc.at(key);
  if (!v.is_string()) {
    return Error(ErrorKind::kProtocol, std::string(what) + ": \"" + key + "\" is not a string");
  }
  std::string s = v.get<std::string>();
  if (s.size() > max) {
    return Error(ErrorKind::kProtocol, std::string(what) + ": \"" + key + "\" is too long");
  }
  return s;
}

Result<std::vector<uint8_t>> GetBase64(const json& doc, const std::string& key,
                                       std::string_view what, size_t min, size_t max) {
  ASSIGN_OR_RETURN(std::string text, GetString(doc, key, what, (max + 2) / 3 * 4));
  auto bytes = DecodeBase64Strict(text, max);
  if (!bytes) {
    return Error(ErrorKind::kProtocol,
                 std::string(what) + ": \"" + key + "\": " + bytes.error().message());
  }
  if (bytes->size() < min || bytes->size() > max) {
    return Error(ErrorKind::kProtocol,
                 std::string(what) + ": \"" + key + "\" must be " +
                     (min == max ? std::to_string(min)
                                 : std::to_string(min) + " to " + std::to_string(max)) +
                     " bytes");
  }
  return std::move(*bytes);
}

Result<std::vector<uint8_t>> GetNonce(const json& doc, std::string_view what) {
  ASSIGN_OR_RETURN(std::string text, GetString(doc, "nonce", what, 2 * kBrokerNonceBytes));
  auto bytes = DecodeLowerHex(text);
  if (!bytes || bytes->size() != kBrokerNonceBytes) {
    return Error(ErrorKind::kProtocol, std::string(what) + ": \"nonce\" must be " +
                                           std::to_string(kBrokerNonceBytes) +
                                           " bytes in lowercase hex");
  }
  return std::move(*bytes);
}

Result<void> CheckType(const json& doc, std::string_view type, std::string_view what) {
  if (!doc.at("type").is_string() || doc.at("type").get<std::string>() != type) {
    return Error(ErrorKind::kProtocol,
                 std::string(what) + ": \"type\" is not \"" + std::string(type) + "\"");
  }
  return Ok();
}

Result<std::string> GetName(const json& doc, std::string_view what) {
  ASSIGN_OR_RETURN(std::string name, GetString(doc, "secret", what, kMaxSecretNameBytes));
  if (auto ok = CheckSecretName(name); !ok) {
    return Error(ErrorKind::kProtocol, std::string(what) + ": " + ok.error().message());
  }
  return name;
}

Result<std::vector<uint8_t>> Hkdf(std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
                                  std::span<const uint8_t> info) {
  KdfPtr kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) return CryptoError("HKDF is not available");
  KdfCtxPtr ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return CryptoError("HKDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()), ikm.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size()),
                         OSSL_PARAM_construct_end()};
  std::vector<uint8_t> key(32);
  if (EVP_KDF_derive(ctx.get(), key.data(), key.size(), params) != 1) {
    return CryptoError("HKDF-SHA256");
  }
  return key;
}

Result<std::vector<uint8_t>> Ecdh(EVP_PKEY* own, EVP_PKEY* peer) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
  size_t len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer_ex(ctx.get(), peer, 1) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) {
    return CryptoError("ECDH P-256");
  }
  std::vector<uint8_t> z(len);
  if (EVP_PKEY_derive(ctx.get(), z.data(), &len) != 1) return CryptoError("ECDH P-256");
  z.resize(len);
  return z;
}

Result<std::vector<uint8_t>> SessionKey(EVP_PKEY* own, EVP_PKEY* peer,
                                        std::span<const uint8_t> nonce,
                                        std::span<const uint8_t> context) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> z, Ecdh(own, peer));
  auto key = Hkdf(z, nonce, context);
  OPENSSL_cleanse(z.data(), z.size());
  return key;
}

}  // namespace

Result<void> CheckSecretName(std::string_view name) {
  if (name.empty() || name.size() > kMaxSecretNameBytes) {
    return InvalidArgument("a secret's name is 1 to " + std::to_string(kMaxSecretNameBytes) +
                           " characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return InvalidArgument("a secret's name may hold only A-Z a-z 0-9 . _ -");
  }
  return Ok();
}

std::string SerializeRequest(const RequestMessage& m) {
  return json{{"type", "request"}, {"protocol", kBrokerProtocol}, {"secret", m.secret}}.dump();
}

std::string SerializeChallenge(const ChallengeMessage& m) {
  return json{{"type", "challenge"}, {"nonce", HexBytes(m.nonce)}, {"expires_in", m.expires_in}}
      .dump();
}

std::string SerializeAttestation(const AttestationMessage& m) {
  return json{{"type", "attestation"},
              {"secret", m.secret},
              {"nonce", HexBytes(m.nonce)},
              {"public_key", B64(m.public_key)},
              {"evidence", B64(m.evidence)}}
      .dump();
}

std::string SerializeResponse(const ResponseMessage& m) {
  json doc{{"type", "response"}, {"verdict", m.verdict}, {"reason", m.reason}, {"ear", m.ear}};
  if (m.sealed) {
    doc["sealed"] = json{{"public_key", B64(m.sealed->public_key)},
                         {"iv", B64(m.sealed->iv)},
                         {"ciphertext", B64(m.sealed->ciphertext)},
                         {"tag", B64(m.sealed->tag)}};
  }
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string SerializeRefused(const RefusedMessage& m) {
  return json{{"type", "refused"}, {"reason", m.reason}}.dump(-1, ' ', false,
                                                              json::error_handler_t::replace);
}

Result<std::string> MessageType(std::span<const uint8_t> body) {
  if (body.size() > kMaxBrokerMessageBytes) {
    return Error(ErrorKind::kProtocol,
                 "message larger than " + std::to_string(kMaxBrokerMessageBytes) + " bytes");
  }
  std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
  StrictJson parsed = ParseStrictJson(text, 4);
  if (parsed.problem != StrictJson::Problem::kNone || !parsed.doc.is_object()) {
    return Error(ErrorKind::kProtocol, "message: not a strict JSON object");
  }
  auto it = parsed.doc.find("type");
  if (it == parsed.doc.end() || !it->is_string()) {
    return Error(ErrorKind::kProtocol, "message: no string \"type\"");
  }
  return it->get<std::string>();
}

Result<RequestMessage> ParseRequest(std::span<const uint8_t> body) {
  constexpr std::string_view what = "request";
  ASSIGN_OR_RETURN(json doc, ParseObject(body, what, {"type", "protocol", "secret"}));
  RETURN_IF_ERROR(CheckType(doc, "request", what));
  ASSIGN_OR_RETURN(std::string protocol, GetString(doc, "protocol", what, 64));
  if (protocol != kBrokerProtocol) {
    return Error(ErrorKind::kProtocol, "request: protocol \"" + protocol + "\" is not \"" +
                                           std::string(kBrokerProtocol) + "\"");
  }
  RequestMessage m;
  ASSIGN_OR_RETURN(m.secret, GetName(doc, what));
  return m;
}

Result<ChallengeMessage> ParseChallenge(std::span<const uint8_t> body) {
  constexpr std::string_view what = "challenge";
  ASSIGN_OR_RETURN(json doc, ParseObject(body, what, {"type", "nonce", "expires_in"}));
  RETURN_IF_ERROR(CheckType(doc, "challenge", what));
  ChallengeMessage m;
  ASSIGN_OR_RETURN(m.nonce, GetNonce(doc, what));
  const json& e = doc.at("expires_in");
  if (!e.is_number_unsigned() || e.get<uint64_t>() == 0 || e.get<uint64_t>() > 3600) {
    return Error(ErrorKind::kProtocol, "challenge: \"expires_in\" must be 1 to 3600 seconds");
  }
  m.expires_in = static_cast<uint32_t>(e.get<uint64_t>());
  return m;
}

Result<AttestationMessage> ParseAttestation(std::span<const uint8_t> body) {
  constexpr std::string_view what = "attestation";
  ASSIGN_OR_RETURN(json doc,
                   ParseObject(body, what, {"type", "secret", "nonce", "public_key", "evidence"}));
  RETURN_IF_ERROR(CheckType(doc, "attestation", what));
  AttestationMessage m;
  ASSIGN_OR_RETURN(m.secret, GetName(doc, what));
  ASSIGN_OR_RETURN(m.nonce, GetNonce(doc, what));
  ASSIGN_OR_RETURN(m.public_key,
                   GetBase64(doc, "public_key", what, kP256PointBytes, kP256PointBytes));
  ASSIGN_OR_RETURN(m.evidence, GetBase64(doc, "evidence", what, 1, 4u << 20));
  return m;
}

Result<ResponseMessage> ParseResponse(std::span<const uint8_t> body) {
  constexpr std::string_view what = "response";
  ASSIGN_OR_RETURN(json doc,
                   ParseObject(body, what, {"type", "verdict", "reason", "ear"}, {"sealed"}));
  RETURN_IF_ERROR(CheckType(doc, "response", what));
  ResponseMessage m;
  ASSIGN_OR_RETURN(m.verdict, GetString(doc, "verdict", what, 32));
  if (m.verdict != "affirming" && m.verdict != "warning" && m.verdict != "contraindicated" &&
      m.verdict != "none") {
    return Error(ErrorKind::kProtocol, "response: unknown verdict \"" + m.verdict + "\"");
  }
  ASSIGN_OR_RETURN(m.reason, GetString(doc, "reason", what, kMaxReasonBytes));
  ASSIGN_OR_RETURN(m.ear, GetString(doc, "ear", what, kMaxEarBytes));
  if (doc.contains("sealed")) {
    const json& s = doc.at("sealed");
    constexpr std::string_view sealed_what = "response: sealed";
    if (!s.is_object()) return Error(ErrorKind::kProtocol, "response: \"sealed\" is not an object");
    const std::set<std::string> keys = {"public_key", "iv", "ciphertext", "tag"};
    for (const auto& [key, value] : s.items()) {
      if (!keys.contains(key)) {
        return Error(ErrorKind::kProtocol, "response: sealed: unknown key \"" + key + "\"");
      }
    }
    for (const std::string& key : keys) {
      if (!s.contains(key)) {
        return Error(ErrorKind::kProtocol, "response: sealed: missing key \"" + key + "\"");
      }
    }
    SealedSecret sealed;
    ASSIGN_OR_RETURN(sealed.public_key,
                     GetBase64(s, "public_key", sealed_what, kP256PointBytes, kP256PointBytes));
    ASSIGN_OR_RETURN(sealed.iv, GetBase64(s, "iv", sealed_what, kIvBytes, kIvBytes));
    ASSIGN_OR_RETURN(sealed.ciphertext,
                     GetBase64(s, "ciphertext", sealed_what, 0, kMaxSecretBytes));
    ASSIGN_OR_RETURN(sealed.tag, GetBase64(s, "tag", sealed_what, kTagBytes, kTagBytes));
    m.sealed = std::move(sealed);
  }
  return m;
}

Result<RefusedMessage> ParseRefused(std::span<const uint8_t> body) {
  constexpr std::string_view what = "refused";
  ASSIGN_OR_RETURN(json doc, ParseObject(body, what, {"type", "reason"}));
  RETURN_IF_ERROR(CheckType(doc, "refused", what));
  RefusedMessage m;
  ASSIGN_OR_RETURN(m.reason, GetString(doc, "reason", what, kMaxReasonBytes));
  return m;
}

std::vector<uint8_t> BindingData(std::span<const uint8_t> nonce,
                                 std::span<const uint8_t> public_key) {
  std::vector<uint8_t> out(32);
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), nonce.data(), nonce.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), public_key.data(), public_key.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    return {};  // never equal to a quote's 32-byte extraData
  }
  return out;
}

Result<EvpPkeyPtr> NewEphemeralKey() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return CryptoError("generating a P-256 key");
  return key;
}

Result<std::vector<uint8_t>> PublicPoint(EVP_PKEY* key) {
  std::vector<uint8_t> point(kP256PointBytes);
  size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(),
                                      point.size(), &len) != 1 ||
      len != kP256PointBytes || point[0] != 0x04) {
    return CryptoError("encoding a P-256 public key");
  }
  return point;
}

Result<EvpPkeyPtr> KeyFromPoint(std::span<const uint8_t> point) {
  if (point.size() != kP256PointBytes || point[0] != 0x04) {
    return Error(ErrorKind::kProtocol, "public key: not an uncompressed P-256 point (65 bytes)");
  }
  char group[] = "P-256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<uint8_t*>(point.data()),
                                        point.size()),
      OSSL_PARAM_construct_end()};
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    ERR_clear_error();
    return Error(ErrorKind::kProtocol, "public key: not a point on P-256");
  }
  EvpPkeyPtr key(raw);
  EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return Error(ErrorKind::kProtocol, "public key: not a valid P-256 public key");
  }
  return key;
}

std::vector<uint8_t> SealContext(std::span<const uint8_t> nonce, std::string_view secret_name,
                                 std::span<const uint8_t> client_point,
                                 std::span<const uint8_t> broker_point) {
  std::vector<uint8_t> out(kContextLabel.begin(), kContextLabel.end());
  out.push_back(0);
  out.insert(out.end(), nonce.begin(), nonce.end());
  out.push_back(static_cast<uint8_t>(secret_name.size()));
  out.insert(out.end(), secret_name.begin(), secret_name.end());
  out.insert(out.end(), client_point.begin(), client_point.end());
  out.insert(out.end(), broker_point.begin(), broker_point.end());
  return out;
}

Result<SealedSecret> SealSecret(std::span<const uint8_t> secret, std::span<const uint8_t> nonce,
                                std::string_view secret_name,
                                std::span<const uint8_t> client_point) {
  if (secret.size() > kMaxSecretBytes) return InvalidArgument("the secret is too large");
  RETURN_IF_ERROR(CheckSecretName(secret_name));
  ASSIGN_OR_RETURN(EvpPkeyPtr client, KeyFromPoint(client_point));
  ASSIGN_OR_RETURN(EvpPkeyPtr own, NewEphemeralKey());
  SealedSecret sealed;
  ASSIGN_OR_RETURN(sealed.public_key, PublicPoint(own.get()));
  const std::vector<uint8_t> context =
      SealContext(nonce, secret_name, client_point, sealed.public_key);
  ASSIGN_OR_RETURN(std::vector<uint8_t> key, SessionKey(own.get(), client.get(), nonce, context));
  sealed.iv.resize(kIvBytes);
  sealed.tag.resize(kTagBytes);
  sealed.ciphertext.resize(secret.size());
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  const bool ok = RAND_bytes(sealed.iv.data(), static_cast<int>(sealed.iv.size())) == 1 && ctx &&
                  EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), sealed.iv.data(),
                                      nullptr) == 1 &&
                  EVP_EncryptUpdate(ctx.get(), nullptr, &len, context.data(),
                                    static_cast<int>(context.size())) == 1 &&
                  EVP_EncryptUpdate(ctx.get(), sealed.ciphertext.data(), &len, secret.data(),
                                    static_cast<int>(secret.size())) == 1 &&
                  EVP_EncryptFinal_ex(ctx.get(), sealed.ciphertext.data() + len, &fin) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                                      sealed.tag.data()) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!ok) return CryptoError("AES-256-GCM encryption");
  return sealed;
}

Result<std::vector<uint8_t>> OpenSecret(const SealedSecret& sealed, EVP_PKEY* client_key,
                                        std::span<const uint8_t> nonce,
                                        std::string_view secret_name) {
  if (sealed.iv.size() != kIvBytes || sealed.tag.size() != kTagBytes ||
      sealed.ciphertext.size() > kMaxSecretBytes) {
    return Error(ErrorKind::kProtocol, "sealed secret: wrong IV, tag or ciphertext size");
  }
  ASSIGN_OR_RETURN(EvpPkeyPtr broker, KeyFromPoint(sealed.public_key));
  ASSIGN_OR_RETURN(std::vector<uint8_t> client_point, PublicPoint(client_key));
  const std::vector<uint8_t> context =
      SealContext(nonce, secret_name, client_point, sealed.public_key);
  ASSIGN_OR_RETURN(std::vector<uint8_t> key, SessionKey(client_key, broker.get(), nonce, context));
  std::vector<uint8_t> plain(sealed.ciphertext.size());
  std::vector<uint8_t> tag = sealed.tag;
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  const bool setup = ctx &&
                     EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), sealed.iv.data(),
                                         nullptr) == 1 &&
                     EVP_DecryptUpdate(ctx.get(), nullptr, &len, context.data(),
                                       static_cast<int>(context.size())) == 1 &&
                     EVP_DecryptUpdate(ctx.get(), plain.data(), &len, sealed.ciphertext.data(),
                                       static_cast<int>(sealed.ciphertext.size())) == 1 &&
                     EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG,
                                         static_cast<int>(kTagBytes), tag.data()) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!setup) return CryptoError("AES-256-GCM decryption");
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &fin) != 1) {
    OPENSSL_cleanse(plain.data(), plain.size());
    ERR_clear_error();
    return Error(ErrorKind::kProtocol,
                 "the sealed secret does not authenticate: its ciphertext, tag, IV or key was "
                 "altered, or it was sealed for another nonce, secret or key");
  }
  return plain;
}

}  // namespace vmm::attestation
