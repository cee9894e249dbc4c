// Evidence from a running VM's vTPM (ARCHITECTURE.md §6): the manager quotes the vTPM over its
// own data channel (locality 3) with the attestation key and packs the quote, the PCR values,
// the event log it measured and the certificates into one bundle (attestation/evidence.h).
//
//   ASSIGN_OR_RETURN(PcrSelection sel, ParsePcrSelection("sha256:0-9+sha384:0-9"));
//   ASSIGN_OR_RETURN(attestation::Evidence ev, QuoteVm(esys, {nonce, sel}, boot.log));
//
// The guest shares the TPM: between the manager's commands it may run its own. QuoteVm reads
// the PCRs, quotes, and recomputes the quote's PCR digest from what it read; a guest extend in
// between shows as a mismatch, and QuoteVm tries again (kQuoteAttempts in all). The AK is
// created for each quote (TPM2_CreatePrimary under the endorsement hierarchy from its fixed
// template) and flushed after it, so a guest that flushes handles cannot break a later quote;
// a guest that fills the TPM's object slots or changes the endorsement authorization can make
// quoting fail (its own attestation: an error, never a wrong quote).
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/evidence.h"
#include "base/result.h"

namespace vmm {

inline constexpr int kQuoteAttempts = 3;
inline constexpr size_t kMaxNonceBytes = 32;  // TPM2B_DATA for a SHA-256 AK's qualifyingData

// Banks and PCRs, in tpm2-tools' syntax: "sha256:0,1,4-9+sha384:0-9" (a bank named once,
// PCRs 0-23, ranges allowed). Kept in the order given (banks) and ascending (PCRs).
struct PcrSelection {
  struct Bank {
    uint16_t alg = 0;
    std::vector<uint32_t> pcrs;
  };
  std::vector<Bank> banks;
};
Result<PcrSelection> ParsePcrSelection(std::string_view text);
std::string PcrSelectionToString(const PcrSelection& selection);
// What `vmm attest` quotes without --pcrs: PCRs 0-9 (every PCR measured boot touches) in the
// banks measured boot allocates.
PcrSelection DefaultQuoteSelection();

struct QuoteRequest {
  std::vector<uint8_t> nonce;  // 1..kMaxNonceBytes bytes, the verifier's
  PcrSelection pcrs;
};
Result<void> CheckQuoteRequest(const QuoteRequest& request);

// The whole bundle: quote, PCR values, `event_log`, the AK (public area and certificate from
// NV) and the RSA EK's certificate (empty if the vTPM has none). ca_chain is left empty: the
// manager holds no CA (`vmm attest` adds the host CA's certificate).
Result<attestation::Evidence> QuoteVm(ESYS_CONTEXT* esys, const QuoteRequest& request,
                                      std::span<const uint8_t> event_log);

}  // namespace vmm
