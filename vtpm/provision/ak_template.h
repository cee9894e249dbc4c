// The attestation key's template (ARCHITECTURE.md §6, README "Attestation key"): a restricted
// ECC NIST P-256 signing key, created as a primary key of the endorsement hierarchy. The
// template is fixed, so TPM2_CreatePrimary gives the same key for the same EPS, and whoever
// can use the endorsement hierarchy with its empty auth (the manager, a guest agent, the
// freestanding test guest) recreates it. Pure: no TPM I/O.
//
//   TPM2B_PUBLIC in = AkTemplate();                // for Esys_CreatePrimary
//   std::span<const uint8_t> raw = AkTemplateBytes();   // the same, marshalled
//   ASSIGN_OR_RETURN(std::vector<uint8_t> name, ObjectName(out->publicArea));
//
// Marshalled TPM2B_PUBLIC, 90 bytes (TPM 2.0 Part 2 §12.2.5; big endian):
//   00 58                       size of the TPMT_PUBLIC: 88
//   00 23                       type      TPM_ALG_ECC
//   00 0b                       nameAlg   TPM_ALG_SHA256
//   00 05 04 72                 objectAttributes: fixedTPM (bit 1), fixedParent (4),
//                               sensitiveDataOrigin (5), userWithAuth (6), noDA (10),
//                               restricted (16), sign (18); not decrypt. noDA: its auth value
//                               is empty, so dictionary-attack protection guards nothing,
//                               and without it every start without an orderly shutdown
//                               counts a failure until the AK locks out (a guest could
//                               force that too)
//   00 00                       authPolicy: empty (userWithAuth with the empty auth value)
//   00 10                       symmetric TPM_ALG_NULL (a signing key has none)
//   00 18 00 0b                 scheme    TPM_ALG_ECDSA, hash TPM_ALG_SHA256
//   00 03                       curveID   TPM_ECC_NIST_P256
//   00 10                       kdf       TPM_ALG_NULL
//   00 20 <32 x 00>             unique.x  32 zero bytes
//   00 20 <32 x 00>             unique.y  32 zero bytes
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace vmm::vtpm {

inline constexpr TPMA_OBJECT kAkAttributes =
    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
    TPMA_OBJECT_SIGN_ENCRYPT;  // 0x00050472

TPM2B_PUBLIC AkTemplate();
// The template above as marshalled bytes (a raw TPM2_CreatePrimary's inPublic).
std::span<const uint8_t> AkTemplateBytes();

// TPMT_PUBLIC as marshalled (Tss2_MU), e.g. the evidence bundle's "ak.public".
Result<std::vector<uint8_t>> MarshalPublicArea(const TPMT_PUBLIC& pub);
Result<TPMT_PUBLIC> UnmarshalPublicArea(std::span<const uint8_t> bytes);
// The object's Name: nameAlg (2 bytes, big endian) || H_nameAlg(marshalled TPMT_PUBLIC)
// (Part 1 §16). Only SHA-256 name algorithms.
Result<std::vector<uint8_t>> ObjectName(const TPMT_PUBLIC& pub);

}  // namespace vmm::vtpm
