// The key broker's wire protocol, "vmm-broker/1" (ARCHITECTURE.md §8 "Key broker"; README
// "Key broker"): messages, their strict parsers, and the encryption of a released secret to the
// client's ephemeral key. Pure: bytes in, bytes out, no sockets (broker_io.h frames them).
//
//   RequestMessage req{.secret = "disk-key"};
//   std::string body = SerializeRequest(req);
//   ASSIGN_OR_RETURN(ChallengeMessage c, ParseChallenge(answer));
//
// The exchange, modelled on a request / challenge / attestation / response flow:
//   client -> broker  {"type":"request","protocol":"vmm-broker/1","secret":NAME}
//   broker -> client  {"type":"challenge","nonce":HEX32,"expires_in":SECONDS}
//                   | {"type":"refused","reason":TEXT}
//   client -> broker  {"type":"attestation","secret":NAME,"nonce":HEX32,
//                      "public_key":BASE64(P-256 point, uncompressed SEC1, 65 bytes),
//                      "evidence":BASE64(a vmm-evidence/1 bundle)}
//   broker -> client  {"type":"response","verdict":EAR status,"reason":TEXT,"ear":EAR JSON text,
//                      "sealed":{"public_key":BASE64(65),"iv":BASE64(12),
//                                "ciphertext":BASE64,"tag":BASE64(16)}}   // only when released
//                   | {"type":"refused","reason":TEXT}
// The quote's qualifying data is BindingData(nonce, public_key) = SHA-256(nonce || public_key),
// so the evidence answers this challenge and names the key the secret is sealed to.
//
// Sealing: ECDH (P-256) between a fresh broker key and the client's key; HKDF-SHA256 with the
// nonce as salt and SealContext(...) as info gives an AES-256-GCM key; the same context is the
// additional authenticated data. Every parser is strict (unknown, missing or repeated keys,
// wrong types, non-canonical base64 or hex are errors) and bounded by kMaxBrokerMessageBytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/openssl_ptr.h"
#include "base/result.h"

namespace vmm::attestation {

inline constexpr std::string_view kBrokerProtocol = "vmm-broker/1";
// An attestation message carries a whole evidence bundle as base64 (4/3 of 4 MiB), plus room.
inline constexpr size_t kMaxBrokerMessageBytes = 6u << 20;
inline constexpr size_t kBrokerNonceBytes = 32;
inline constexpr size_t kP256PointBytes = 65;  // 0x04 || x || y
inline constexpr size_t kMaxSecretBytes = 64u << 10;
inline constexpr size_t kMaxSecretNameBytes = 64;
inline constexpr size_t kMaxReasonBytes = 4096;
inline constexpr size_t kMaxEarBytes = 1u << 20;

struct RequestMessage {
  std::string secret;
};
struct ChallengeMessage {
  std::vector<uint8_t> nonce;
  uint32_t expires_in = 0;  // seconds
};
struct AttestationMessage {
  std::string secret;
  std::vector<uint8_t> nonce;
  std::vector<uint8_t> public_key;  // uncompressed SEC1 P-256 point
  std::vector<uint8_t> evidence;    // the vmm-evidence/1 bundle's bytes
};
struct SealedSecret {
  std::vector<uint8_t> public_key;  // the broker's ephemeral P-256 point
  std::vector<uint8_t> iv;
  std::vector<uint8_t> ciphertext;
  std::vector<uint8_t> tag;
};
struct ResponseMessage {
  std::string verdict;  // "affirming", "warning", "contraindicated", "none"
  std::string reason;
  std::string ear;                     // the EAR claims set (ear.h), as JSON text
  std::optional<SealedSecret> sealed;  // present only when the secret was released
};
struct RefusedMessage {
  std::string reason;
};

// Secret names: 1..kMaxSecretNameBytes of [A-Za-z0-9._-].
Result<void> CheckSecretName(std::string_view name);

std::string SerializeRequest(const RequestMessage& m);
std::string SerializeChallenge(const ChallengeMessage& m);
std::string SerializeAttestation(const AttestationMessage& m);
std::string SerializeResponse(const ResponseMessage& m);
std::string SerializeRefused(const RefusedMessage& m);

// The "type" of a message that parses as a JSON object with a string "type"; an error otherwise.
Result<std::string> MessageType(std::span<const uint8_t> body);
Result<RequestMessage> ParseRequest(std::span<const uint8_t> body);
Result<ChallengeMessage> ParseChallenge(std::span<const uint8_t> body);
Result<AttestationMessage> ParseAttestation(std::span<const uint8_t> body);
Result<ResponseMessage> ParseResponse(std::span<const uint8_t> body);
Result<RefusedMessage> ParseRefused(std::span<const uint8_t> body);

// SHA-256(nonce || public_key): the quote's qualifying data.
std::vector<uint8_t> BindingData(std::span<const uint8_t> nonce,
                                 std::span<const uint8_t> public_key);

// A fresh P-256 key, and its public point as uncompressed SEC1.
Result<EvpPkeyPtr> NewEphemeralKey();
Result<std::vector<uint8_t>> PublicPoint(EVP_PKEY* key);
// A peer's point: on the curve, uncompressed, not the identity.
Result<EvpPkeyPtr> KeyFromPoint(std::span<const uint8_t> point);

// "vmm-broker/1 aes-256-gcm" || 0 || nonce || len8(name) || name || client point || broker point.
std::vector<uint8_t> SealContext(std::span<const uint8_t> nonce, std::string_view secret_name,
                                 std::span<const uint8_t> client_point,
                                 std::span<const uint8_t> broker_point);

// The broker's side: encrypts `secret` to `client_point` with a fresh key of its own.
Result<SealedSecret> SealSecret(std::span<const uint8_t> secret, std::span<const uint8_t> nonce,
                                std::string_view secret_name,
                                std::span<const uint8_t> client_point);
// The client's side; any change to the sealed secret, the nonce, the name or either key fails.
Result<std::vector<uint8_t>> OpenSecret(const SealedSecret& sealed, EVP_PKEY* client_key,
                                        std::span<const uint8_t> nonce,
                                        std::string_view secret_name);

}  // namespace vmm::attestation
