// EK certificates issued by the host vTPM CA, and their verification. Pure OpenSSL: the
// TPM side (EK creation, NV storage) is ek_provision.h.
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> der, IssueEkCertificate(ca, ek_key, EkKind::kRsa2048,
//                                                                  identity, "vm-1"));
//   RETURN_IF_ERROR(VerifyEkCertificate(der, ca_pem, ek_public_pem));
//
// Profile (TCG EK Credential Profile for TPM Family 2.0, §3.2; RFC 5280):
//   version 3, random 127-bit serial, signature ecdsa-with-SHA256 by the CA key;
//   issuer = CA subject; subject "CN=vmm vTPM EK <vm-id>" (empty if vm-id is empty);
//   validity: now - 5 min .. the CA's notAfter;
//   basicConstraints critical CA:FALSE;
//   keyUsage critical keyEncipherment (RSA) or keyAgreement (ECC);
//   extendedKeyUsage tcg-kp-EKCertificate (2.23.133.8.1);
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
#include "vtpm/provision/ek_template.h"
#include "vtpm/provision/host_ca.h"

namespace vmm::vtpm {

// What the EK certificate says about the TPM (TPM2_GetCapability TPM_PT_MANUFACTURER,
// TPM_PT_VENDOR_STRING_1..4, TPM_PT_FIRMWARE_VERSION_1).
struct TpmIdentity {
  uint32_t manufacturer = 0;  // four ASCII characters, e.g. "IBM" for libtpms
  std::string model;          // the vendor string, trailing NULs and spaces removed
  uint32_t firmware_version = 0;
};

Result<std::vector<uint8_t>> IssueEkCertificate(const HostCa& ca, EVP_PKEY* ek_public, EkKind kind,
                                                const TpmIdentity& tpm, std::string_view vm_id);

// X509_verify_cert against `ca_cert_pem` as the only trust anchor (X509_V_FLAG_X509_STRICT,
// current time), then: not a CA certificate, and its public key equals `ek_public_pem`
// (pass the key from ReadEkPublic, i.e. from the TPM itself). The Error says which check
// failed.
Result<void> VerifyEkCertificate(std::span<const uint8_t> cert_der, std::string_view ca_cert_pem,
                                 std::string_view ek_public_pem);

}  // namespace vmm::vtpm
