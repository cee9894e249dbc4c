// The guest-side path to an evidence bundle (ARCHITECTURE.md §8): a guest quotes its own vTPM
// over CRB with the same AK the manager uses and prints the pieces on its console (the test
// guest's `attest` check, tests/guest/README.md); this reads them back from the captured
// console output and assembles a vmm-evidence/1 bundle with "source": "guest"
// (`vmm-verify from-guest`).
//
//   ASSIGN_OR_RETURN(GuestPieces pieces, ParseGuestAttestLines(serial));
//   ASSIGN_OR_RETURN(Evidence e, EvidenceFromGuest(serial, {log, nonce, ca_chain}));
//
// The console text comes from the guest: it is untrusted and read strictly. Only lines that
// start with "attest: " are read (every other line is ignored); each must be one of
//   attest: <piece> <i>/<n> <hex>       piece: nonce, ak-public, quote, signature, ak-cert,
//                                        ek-cert; the piece's bytes are the chunks 1..n in
//                                        order, each on its own line
//   attest: pcr <bank> <index> <hex>    bank: sha1, sha256, sha384, sha512; index 0..23 in
//                                        decimal without leading zeros; the bank's digest size
// with lowercase hex, single spaces and "\n" endings. A piece or PCR given twice, a chunk out
// of order or missing, an unknown piece, a line longer than kMaxGuestLineBytes or a piece over
// its limit is an error that names the line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attestation/evidence.h"
#include "base/result.h"

namespace vmm::attestation {

inline constexpr size_t kMaxGuestSerialBytes = 16u << 20;  // the whole console capture
inline constexpr size_t kMaxGuestLineBytes = 1024;         // one `attest:` line
inline constexpr size_t kMaxGuestChunks = 64;              // chunks of one piece
inline constexpr size_t kMaxGuestPieceBytes = 8192;        // one piece, decoded

struct GuestPieces {
  std::vector<uint8_t> nonce;      // what the guest put in qualifyingData
  std::vector<uint8_t> ak_public;  // TPMT_PUBLIC as marshalled
  std::vector<uint8_t> attest;     // TPMS_ATTEST as marshalled
  std::vector<uint8_t> signature;  // TPMT_SIGNATURE as marshalled
  std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>> pcrs;
  std::vector<uint8_t> ak_cert_der;
  std::optional<std::vector<uint8_t>> ek_cert_der;  // absent when the vTPM has none
};

// The `attest:` lines of `serial`, checked as above; every piece but ek-cert and at least one
// PCR must be there.
Result<GuestPieces> ParseGuestAttestLines(std::span<const uint8_t> serial);

struct GuestBundleInputs {
  std::span<const uint8_t> event_log;     // the host's copy (vmm run --event-log-out)
  std::vector<uint8_t> nonce;             // what the verifier asked the guest to quote
  std::vector<std::string> ca_chain_pem;  // into "ca_chain" as given (may be empty)
};

// ParseGuestAttestLines, then the bundle: the guest's nonce line and the quote's extraData
// must both be `inputs.nonce`; the PCR lines must be exactly the quote's selection; the
// certificates must each be one DER X.509 certificate (no trailing bytes) and become PEM.
// Nothing is verified that vmm-verify checks (signature, certificates' issuer, the log).
Result<Evidence> EvidenceFromGuest(std::span<const uint8_t> serial,
                                   const GuestBundleInputs& inputs);

}  // namespace vmm::attestation
