// TPM2_Quote as a verifier sees it (ARCHITECTURE.md §6): the attestation key's public area, the
// quote's TPMS_ATTEST and its TPMT_SIGNATURE, all as marshalled by the TPM and unmarshalled here
// with tss2-mu (trailing bytes are an error). Pure functions over bytes and OpenSSL keys.
//
//   ASSIGN_OR_RETURN(AkPublic ak, ParseAkPublic(evidence.ak_public));
//   ASSIGN_OR_RETURN(QuoteInfo quote, ParseQuote(evidence.attest));
//   RETURN_IF_ERROR(VerifyQuoteSignature(ak, evidence.attest, evidence.signature));
//   ASSIGN_OR_RETURN(auto digest, ComputePcrDigest(sig_hash_alg, quote.selection, evidence.pcrs));
//
// TPM 2.0 Library Part 1 §16 (names), §36 (attestation); Part 2 §10.12 (TPMS_ATTEST).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "attestation/ossl.h"
#include "base/result.h"

namespace vmm::attestation {

// The attributes an attestation key must have: a restricted signing key whose private part
// the TPM made and can never leave it (Part 1 §27.2: only such a key signs TPM-generated
// structures that a verifier can trust).
inline constexpr uint32_t kAkRequiredAttributes = 0x00000002     // fixedTPM
                                                  | 0x00000010   // fixedParent
                                                  | 0x00000020   // sensitiveDataOrigin
                                                  | 0x00010000   // restricted
                                                  | 0x00040000;  // sign
inline constexpr uint32_t kAkForbiddenAttributes = 0x00020000;   // decrypt

struct AkPublic {
  uint16_t type = 0;      // TPM2_ALG_ECC or TPM2_ALG_RSA
  uint16_t name_alg = 0;  // the name's hash
  uint32_t attributes = 0;
  std::vector<uint8_t> name;  // nameAlg (big-endian) || H_nameAlg(marshalled TPMT_PUBLIC)
  EvpPkeyPtr key;             // ECC P-256 or RSA 2048
  // `key` made ready to verify (EVP_PKEY_verify_init), once: VerifyQuoteSignature duplicates it
  // for each signature, which costs a tenth of setting it up again, and never changes it, so
  // threads may share an AkPublic (ChainCache does). nullptr: set up for each signature.
  EvpPkeyCtxPtr verifier;
};

// A TPMT_PUBLIC as marshalled: an ECC NIST P-256 key (or an RSA 2048 key), with the attributes
// above and a name algorithm of SHA-256, -384 or -512. The error says what is wrong.
Result<AkPublic> ParseAkPublic(std::span<const uint8_t> tpmt_public);

// The qualified name the TPM puts in a quote's qualifiedSigner (Part 1 §16.6): for a primary key
// of a hierarchy, nameAlg || H_nameAlg(the hierarchy's handle, 4 bytes big-endian || the key's
// name). The verifier accepts AKs that are primary keys (the vTPM's AK is a primary key of the
// endorsement hierarchy, ARCHITECTURE.md §6); the qualified name of a key under a parent needs
// the parent's, which a bundle does not carry.
inline constexpr uint32_t kTpmRhOwner = 0x40000001;
inline constexpr uint32_t kTpmRhNull = 0x40000007;
inline constexpr uint32_t kTpmRhEndorsement = 0x4000000B;
inline constexpr uint32_t kTpmRhPlatform = 0x4000000C;
Result<std::vector<uint8_t>> QualifiedNameAsPrimary(const AkPublic& ak, uint32_t hierarchy);

struct PcrSelection {
  uint16_t alg = 0;
  std::vector<uint32_t> pcrs;  // ascending
};

struct QuoteInfo {
  uint32_t magic = 0;
  uint16_t type = 0;
  std::vector<uint8_t> qualified_signer;
  std::vector<uint8_t> extra_data;
  uint64_t clock = 0;
  uint32_t reset_count = 0;
  uint32_t restart_count = 0;
  bool safe = false;
  uint64_t firmware_version = 0;
  // Set only when type is TPM_ST_ATTEST_QUOTE:
  std::vector<PcrSelection> selection;  // banks in the quote's order
  std::vector<uint8_t> pcr_digest;
};

inline constexpr uint32_t kTpmGeneratedValue = 0xff544347;
inline constexpr uint16_t kTpmStAttestQuote = 0x8018;

// A TPMS_ATTEST as marshalled (TPM2B_ATTEST's buffer), of any attestation type; magic and type
// are reported, not checked.
Result<QuoteInfo> ParseQuote(std::span<const uint8_t> attest);

// The TPMT_SIGNATURE's scheme and hash, once it unmarshals.
struct SignatureInfo {
  uint16_t sig_alg = 0;   // TPM2_ALG_ECDSA or TPM2_ALG_RSASSA
  uint16_t hash_alg = 0;  // the hash the TPM signed `attest` with
};
Result<SignatureInfo> ParseSignature(std::span<const uint8_t> tpmt_signature);

// The signature over `attest` by the AK: ECDSA (r, s as DER) for an ECC key, RSASSA-PKCS1-v1_5
// for an RSA key, with the signature's hash (SHA-256, -384 or -512).
Result<SignatureInfo> VerifyQuoteSignature(const AkPublic& ak, std::span<const uint8_t> attest,
                                           std::span<const uint8_t> tpmt_signature);

// H_alg(the values of the selected PCRs concatenated: banks in the selection's order, PCRs
// ascending), the way the TPM computes a quote's pcrDigest (Part 3 §18.4). Every selected PCR
// must be in `pcrs` with its bank's digest size; the error names the first that is not.
Result<std::vector<uint8_t>> ComputePcrDigest(
    uint16_t alg, std::span<const PcrSelection> selection,
    const std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>& pcrs);

}  // namespace vmm::attestation
