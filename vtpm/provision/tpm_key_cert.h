// Certificates the host vTPM CA issues for keys of a vTPM (the EKs, ek_cert.h; the AK,
// ak_cert.h): one builder and one verifier, so the two certificate kinds differ only in the
// profile fields below. Pure OpenSSL: no TPM I/O.
//
//   ASSIGN_OR_RETURN(auto der, IssueTpmKeyCertificate(ca, key, kAkProfile, identity, "vm-1"));
//   RETURN_IF_ERROR(VerifyTpmKeyCertificate(der, ca_pem, key_pem, kAkProfile));
//
// Common profile (TCG EK Credential Profile for TPM Family 2.0 §3.2; RFC 5280):
//   version 3, random 127-bit serial, signature ecdsa-with-SHA256 by the CA key;
//   issuer = CA subject; subject "CN=<subject_prefix> <vm-id>" (empty if vm-id is empty);
//   validity: now - 5 min .. 10 years, capped at the CA's notAfter;
//   basicConstraints critical CA:FALSE; keyUsage critical <key_usage>;
//   extendedKeyUsage <eku_oid>;
//   subjectAltName directoryName, one RDN with tcg-at-tpmManufacturer (2.23.133.2.1)
//     "id:XXXXXXXX", tcg-at-tpmModel (2.23.133.2.2), tcg-at-tpmVersion (2.23.133.2.3)
//     "id:XXXXXXXX"; critical when the subject is empty (RFC 5280 4.2.1.6);
//   authorityKeyIdentifier keyid (the CA's subjectKeyIdentifier).
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vtpm/provision/host_ca.h"

namespace vmm::vtpm {

// What a certificate says about the TPM (TPM2_GetCapability TPM_PT_MANUFACTURER,
// TPM_PT_VENDOR_STRING_1..4, TPM_PT_FIRMWARE_VERSION_1).
struct TpmIdentity {
  uint32_t manufacturer = 0;  // four ASCII characters, e.g. "IBM" for libtpms
  std::string model;          // the vendor string, trailing NULs and spaces removed
  uint32_t firmware_version = 0;
};

struct TpmKeyCertProfile {
  const char* what;            // "EK", "AK": in messages
  const char* key_name;        // "endorsement key": in messages
  const char* subject_prefix;  // "vmm vTPM EK"
  const char* key_usage;       // OpenSSL config syntax, e.g. "critical,digitalSignature"
  const char* eku_oid;         // e.g. "2.23.133.8.3" (tcg-kp-AIKCertificate)
};

Result<std::vector<uint8_t>> IssueTpmKeyCertificate(const HostCa& ca, EVP_PKEY* key,
                                                    const TpmKeyCertProfile& profile,
                                                    const TpmIdentity& tpm, std::string_view vm_id);

// X509_verify_cert against `ca_cert_pem` as the only trust anchor (X509_V_FLAG_X509_STRICT,
// current time), then: not a CA certificate, the profile's extended key usage present, and
// the public key equal to `key_pem` (from the TPM itself). The Error says which check failed.
Result<void> VerifyTpmKeyCertificate(std::span<const uint8_t> cert_der,
                                     std::string_view ca_cert_pem, std::string_view key_pem,
                                     const TpmKeyCertProfile& profile);

}  // namespace vmm::vtpm
