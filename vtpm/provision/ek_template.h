// The TCG default EK templates and NV indices (TCG EK Credential Profile for TPM Family
// 2.0, §2.2.1.4 Low Range: Template L-1 RSA 2048, L-2 ECC NIST P-256; §2.2.1.5 NV indices),
// and the conversion of a TPM public area to an OpenSSL key. Pure: no TPM I/O.
//
//   TPM2B_PUBLIC in = EkTemplate(EkKind::kRsa2048);      // for Esys_CreatePrimary
//   ASSIGN_OR_RETURN(EvpPkeyPtr key, PublicAreaToKey(out->publicArea));
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <string>

#include "base/result.h"
#include "vtpm/provision/ossl.h"

namespace vmm::vtpm {

enum class EkKind { kRsa2048, kEccP256 };

inline constexpr uint32_t kEkCertNvIndexRsa2048 = 0x01c00002;
inline constexpr uint32_t kEkCertNvIndexEccP256 = 0x01c0000a;

// TPM2_PolicySecret(TPM_RH_ENDORSEMENT) policy digest, SHA-256 (the profile's
// authPolicy for the low-range templates).
inline constexpr uint8_t kEkAuthPolicySha256[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

uint32_t EkCertNvIndex(EkKind kind);
const char* EkKindName(EkKind kind);  // "RSA 2048", "ECC NIST P-256"

// fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt;
// nameAlg SHA-256; AES-128-CFB; scheme NULL; unique all zeros of the key size.
TPM2B_PUBLIC EkTemplate(EkKind kind);

// An RSA (exponent 0 means 65537) or ECC NIST P-256 public area as an OpenSSL public key.
Result<EvpPkeyPtr> PublicAreaToKey(const TPMT_PUBLIC& pub);

}  // namespace vmm::vtpm
