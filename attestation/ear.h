// The attestation result as an EAT Attestation Result (draft-fv-rats-ear, the "veraison/ear"
// profile Veraison and Trustee emit): JSON, and a compact JWT signed ES256.
//
//   std::string json = EarToJson(result, nonce, time(nullptr));
//   ASSIGN_OR_RETURN(std::string jwt, EarToJwt(result, nonce, time(nullptr), key_pem));
//
//   {"eat_profile": "tag:github.com,2023:veraison/ear", "iat": <unix time>,
//    "ear.verifier-id": {"developer": "vmm", "build": "vmm-verify <version>"},
//    "eat_nonce": "<base64url of the nonce, when it is 8-64 bytes>",
//    "submods": {"vmm-vtpm": {
//      "ear.status": "affirming" | "warning" | "contraindicated" | "none",
//      "ear.trustworthiness-vector": {"instance-identity": 2, ...},   // claims made only
//      "ear.appraisal-policy-id": "<the policy's id>",                // with a policy
//      "vmm.checks": [{"name", "status", "reason", "pcr"?, "event"?}, ...],
//      "vmm.vm-id": "<from the certificates>",                        // once bound
//      "vmm.quote": {"clock", "reset_count", "restart_count", "safe", "firmware_version"}}}}
// "vmm.*" are this verifier's extension claims (the draft lets a profile add its own).
#pragma once

#include <cstdint>
#include <ctime>
#include <span>
#include <string>
#include <string_view>

#include "attestation/verify.h"
#include "base/result.h"

namespace vmm::attestation {

inline constexpr std::string_view kEarProfile = "tag:github.com,2023:veraison/ear";
inline constexpr std::string_view kEarSubmod = "vmm-vtpm";

// The claims set, 2-space indented, with a final newline.
std::string EarToJson(const VerifyResult& result, std::span<const uint8_t> nonce, time_t iat);

// header.payload.signature (RFC 7519/7515): {"alg":"ES256","typ":"JWT"}, the claims set
// compact, and ECDSA P-256 with SHA-256 as raw r||s (64 bytes), all base64url without padding.
// `key_pem` is a P-256 private key (PKCS#8 or SEC1 PEM); any other key is an error.
Result<std::string> EarToJwt(const VerifyResult& result, std::span<const uint8_t> nonce, time_t iat,
                             std::string_view key_pem);

std::string Base64Url(std::span<const uint8_t> bytes);

}  // namespace vmm::attestation
