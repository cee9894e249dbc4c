// The evidence bundle as tpm2-tools' files, both ways (`vmm-verify unpack` / `pack`), so that
// `tpm2_checkquote` checks our quotes and quotes made with `tpm2_quote` become bundles.
//
//   std::map<std::string, std::vector<uint8_t>> files;
//   ASSIGN_OR_RETURN(files, UnpackEvidence(evidence));      // name -> contents
//   ASSIGN_OR_RETURN(Evidence again, PackEvidence(files, EvidenceSource::kManager));
//
// Files (as tpm2-tools 5.x writes and reads them):
//   quote.msg     TPMS_ATTEST as marshalled            (tpm2_quote -m, tpm2_checkquote -m)
//   quote.sig     TPMT_SIGNATURE as marshalled         (tpm2_quote -s, tpm2_checkquote -s)
//   quote.pcrs    the PCR values, "serialized" format  (tpm2_quote -o, tpm2_checkquote -f): the
//                 C structs as in memory on a little-endian host: TPML_PCR_SELECTION (132
//                 bytes), a u32 count, then count TPML_DIGEST (532 bytes each) holding the
//                 selected PCRs' values in selection order, at most 8 per TPML_DIGEST
//   ak.pub        TPM2B_PUBLIC as marshalled           (tpm2_createak -u)
//   ak.pub.pem    the AK as SubjectPublicKeyInfo PEM    (tpm2_checkquote -u; unpack only)
//   ak.crt.pem, ek.crt.pem, ca-chain.pem   the certificates (optional; ak.crt.pem and
//                 ek.crt.pem absent when the bundle has none)
//   eventlog.bin  the TCG event log                     (tpm2_eventlog, tpm2_checkquote -e)
// pack needs quote.msg, quote.sig, quote.pcrs, ak.pub and eventlog.bin; the bundle's nonce is
// the quote's extraData, and its PCR values are those of quote.pcrs.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "attestation/evidence.h"
#include "attestation/quote.h"
#include "base/result.h"

namespace vmm::attestation {

using FileSet = std::map<std::string, std::vector<uint8_t>>;

inline constexpr const char* kPackRequired[] = {"quote.msg", "quote.sig", "quote.pcrs", "ak.pub",
                                                "eventlog.bin"};
inline constexpr const char* kPackOptional[] = {"ak.crt.pem", "ek.crt.pem", "ca-chain.pem"};

Result<FileSet> UnpackEvidence(const Evidence& evidence);
Result<Evidence> PackEvidence(const FileSet& files, EvidenceSource source);

// quote.pcrs alone: written for the quote's selection from `pcrs` (every selected PCR must be
// there), and read back into values per bank (the selection is checked against the quote's
// by the caller, if it wants).
Result<std::vector<uint8_t>> WritePcrsFile(
    std::span<const uint8_t> attest,
    const std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>& pcrs);
Result<std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>> ReadPcrsFile(
    std::span<const uint8_t> bytes, std::vector<PcrSelection>* selection = nullptr);

}  // namespace vmm::attestation
