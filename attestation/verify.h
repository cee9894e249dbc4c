// The tenant's verification of an evidence bundle (ARCHITECTURE.md §6; README "Verifying
// evidence"): every check in order, each pass / fail / skip with its reason, and the verdict in
// the terms of an EAT Attestation Result (ear.h writes it out).
//
//   VerifyOptions options{.ca_pem = ca, .nonce = nonce, .policy = &policy};
//   VerifyResult result = VerifyBundle(bundle_bytes, options);
//   if (result.status == EarStatus::kAffirming) ...
//
// Checks, in order (a check whose dependency did not pass is skipped, "not run: <dep> failed"):
//   evidence-format   the bundle parses (evidence.h)
//   ca-chain          the bundle's ca_chain chains to the tenant's CA
//   ak-public         the AK's public area is a restricted signing key, P-256 or RSA 2048
//   ak-certificate    ...chains to the CA, valid, profile, certifies the AK (cert_checks.h)
//   ak-binding        the AK and EK certificates: same issuer, vm-id and TPM
//   ek-certificate    ...chains to the CA, valid, EK profile (skip when the bundle has none)
//   quote-magic       TPMS_ATTEST unmarshals, magic is TPM_GENERATED_VALUE
//   quote-type        TPM_ST_ATTEST_QUOTE
//   quote-signature   the AK signed it, and qualifiedSigner is the AK's qualified name as a
//                     primary key (quote.h: QualifiedNameAsPrimary)
//   nonce             extraData equals the verifier's nonce (freshness)
//   pcr-digest        pcrDigest = H(the bundle's values of the selected PCRs)
//   event-log-parse   the log parses
//   event-log-replay  every quoted PCR of a bank the log carries equals the replay (so PCRs the
//                     log does not touch hold their reset value), and every PCR the log extends
//                     is quoted in every bank the log carries (no unquoted event is appraised)
//   policy-*          AppraiseEventLog (appraisal.h), or "policy" skipped without a policy
// Status: affirming when every check passes; contraindicated when any fails; warning when none
// fails but some were skipped (no EK certificate, no policy). A "policy-*" check skipped because
// the tenant's policy leaves that component out does not lower the verdict.
#pragma once

#include <array>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/evidence.h"

namespace vmm::attestation {

class ChainCache;  // chain_cache.h

enum class EarStatus { kNone, kAffirming, kWarning, kContraindicated };
std::string_view EarStatusName(EarStatus status);      // "affirming", ...
std::string_view CheckStatusName(CheckStatus status);  // "pass", "fail", "skip"

// AR4SI trustworthiness claims (draft-ietf-rats-ar4si §2.3), indexed by Claim; 0 = no claim.
using TrustVector = std::array<int, 9>;
// "instance-identity", "configuration", "executables", "file-system", "hardware",
// "runtime-opaque", "storage-opaque", "sourced-data"; "" for kNone.
std::string_view ClaimName(Claim claim);

struct VerifyOptions {
  std::string ca_pem;              // the tenant's trust anchor
  std::vector<uint8_t> nonce;      // what the quote's extraData must be
  const Policy* policy = nullptr;  // nullptr: no appraisal ("policy" skipped)
  std::optional<time_t> at;        // certificate validity time; nullopt: now
  // Remembers passed certificate checks across calls (chain_cache.h); the result is the same
  // with or without it. nullptr: every check runs in full.
  ChainCache* chain_cache = nullptr;
};

struct VerifyResult {
  std::vector<Check> checks;
  EarStatus status = EarStatus::kNone;
  TrustVector vector{};
  std::string policy_id;  // the policy's id, "" without a policy
  std::string vm_id;      // from the certificates, once ak-binding passed
  struct Clock {
    uint64_t clock = 0;
    uint32_t reset_count = 0;
    uint32_t restart_count = 0;
    bool safe = false;
    uint64_t firmware_version = 0;
  };
  std::optional<Clock> quote_clock;  // once quote-signature passed
};

VerifyResult Verify(const Evidence& evidence, const VerifyOptions& options);
// ParseEvidence, then Verify; a bundle that does not parse fails "evidence-format".
VerifyResult VerifyBundle(std::span<const uint8_t> json, const VerifyOptions& options);

// One line per check ("pass  quote-signature  <reason>") and the verdict.
std::string ResultToText(const VerifyResult& result);

}  // namespace vmm::attestation
