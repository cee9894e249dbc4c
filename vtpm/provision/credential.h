// TPM2_MakeCredential in software, the CA's half of the credential protocol (TPM 2.0 Part 1
// §24 "Credential Protection"): a secret that only the TPM holding the EK can recover, and
// only for an object of the given Name in that TPM (TPM2_ActivateCredential). Pure OpenSSL.
//
//   ASSIGN_OR_RETURN(CredentialBlob c, MakeCredential(ek_public, ak_name, challenge));
//   // the TPM: Esys_ActivateCredential(ak, ek, c.id_object, c.encrypted_secret) -> challenge
//
// For an RSA EK with nameAlg SHA-256 and an AES-128-CFB symmetric definition (the TCG default
// template L-1):
//   seed        32 random bytes
//   secret      RSA-OAEP(SHA-256, label "IDENTITY\0") of the seed under the EK
//   symKey      KDFa(SHA-256, seed, "STORAGE", name, empty, 128)
//   encIdentity AES-128-CFB(symKey, IV 0) of TPM2B_DIGEST(credential)
//   hmacKey     KDFa(SHA-256, seed, "INTEGRITY", empty, empty, 256)
//   outerHMAC   HMAC-SHA256(hmacKey, encIdentity || name)
//   id_object   TPM2B_DIGEST(outerHMAC) || encIdentity   (TPM2B_ID_OBJECT's buffer)
// KDFa is SP 800-108 counter mode with HMAC (Part 1 §11.4.10.2).
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::vtpm {

struct CredentialBlob {
  std::vector<uint8_t> id_object;         // TPM2B_ID_OBJECT.credential
  std::vector<uint8_t> encrypted_secret;  // TPM2B_ENCRYPTED_SECRET.secret
};

// `credential`: 1..32 bytes (a TPM2B_DIGEST of the EK's nameAlg). `object_name`: the Name of
// the key that must be loaded beside the EK (2..34 bytes). ECC EKs: kUnsupported.
Result<CredentialBlob> MakeCredential(const TPMT_PUBLIC& ek_public,
                                      std::span<const uint8_t> object_name,
                                      std::span<const uint8_t> credential);

// KDFa(SHA-256, key, label, context_u, context_v, bits): exposed for tests.
std::vector<uint8_t> KdfaSha256(std::span<const uint8_t> key, std::string_view label,
                                std::span<const uint8_t> context_u,
                                std::span<const uint8_t> context_v, uint32_t bits);

}  // namespace vmm::vtpm
