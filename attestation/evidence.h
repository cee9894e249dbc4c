// The evidence bundle (ARCHITECTURE.md §6, README "Remote attestation"): one self-describing,
// versioned JSON document that `vmm attest` writes and `vmm-verify` reads. Everything a
// verifier needs is inside except what it must bring itself: the CA certificate it trusts, the
// nonce it chose and its reference-value policy.
//
// Format "vmm-evidence/1" (strict: unknown, missing or repeated keys, wrong types, bad base64
// or hex are errors; total size at most kMaxEvidenceBytes):
//   {
//     "format": "vmm-evidence/1",
//     "source": "manager" | "guest",         // who sent TPM2_Quote (the manager over its
//                                            // locality-3 channel, or a guest over CRB)
//     "nonce": "<hex>",                      // the qualifying data asked for (informational:
//                                            // the verifier checks extraData against its own)
//     "quote": {
//       "attest": "<base64>",               // TPMS_ATTEST as marshalled (TPM2B_ATTEST's buffer)
//       "signature": "<base64>"             // TPMT_SIGNATURE as marshalled
//     },
//     "pcrs": {                              // the quoted PCR values, per bank name
//       "sha256": {"0": "<hex>", "1": "<hex>", ...},
//       "sha384": {...}
//     },
//     "event_log": "<base64>",               // the TCG crypto-agile log of the boot
//     "ak": {
//       "public": "<base64>",               // TPMT_PUBLIC as marshalled (no TPM2B size)
//       "certificate": "<PEM>"              // issued by the host vTPM CA
//     },
//     "ek": {"certificate": "<PEM>"},        // may be "" if the vTPM has none
//     "ca_chain": ["<PEM>", ...]             // issuer of the AK/EK certificates first, up to
//                                            // (and including) the root; a verifier anchors it
//                                            // on its own copy of the CA, never on this list
//   }
// Bank names are tpm_alg.h's ("sha1", "sha256", "sha384", "sha512"); PCR keys are decimal
// 0..23 without leading zeros. Digests are lowercase hex of the bank's digest size.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmm::attestation {

inline constexpr std::string_view kEvidenceFormat = "vmm-evidence/1";
inline constexpr size_t kMaxEvidenceBytes = 4u << 20;  // the whole JSON document
inline constexpr size_t kMaxEventLogBytes = 1u << 20;  // the decoded event log
inline constexpr size_t kMaxCaChain = 8;               // certificates in ca_chain

enum class EvidenceSource { kManager, kGuest };

struct Evidence {
  EvidenceSource source = EvidenceSource::kManager;
  std::vector<uint8_t> nonce;
  std::vector<uint8_t> attest;     // TPMS_ATTEST, marshalled
  std::vector<uint8_t> signature;  // TPMT_SIGNATURE, marshalled
  // bank (TPM_ALG_ID) -> PCR index -> digest
  std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>> pcrs;
  std::vector<uint8_t> event_log;
  std::vector<uint8_t> ak_public;  // TPMT_PUBLIC, marshalled
  std::string ak_certificate_pem;
  std::string ek_certificate_pem;
  std::vector<std::string> ca_chain_pem;
};

// Strict parse of a bundle (the format above); errors name the key at fault.
Result<Evidence> ParseEvidence(std::span<const uint8_t> json);
// The bundle as JSON (2-space indent, keys in the order above, a final newline).
std::string SerializeEvidence(const Evidence& evidence);

}  // namespace vmm::attestation
