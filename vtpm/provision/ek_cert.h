// EK certificates issued by the host vTPM CA, and their verification. Pure OpenSSL: the
// TPM side (EK creation, NV storage) is ek_provision.h.
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> der, IssueEkCertificate(ca, ek_key, EkKind::kRsa2048,
//                                                                  identity, "vm-1"));
//   RETURN_IF_ERROR(VerifyEkCertificate(der, ca_pem, ek_public_pem));
//
// Profile: tpm_key_cert.h's, with subject "CN=vmm vTPM EK <vm-id>", keyUsage critical
// keyEncipherment (RSA) or keyAgreement (ECC), extendedKeyUsage tcg-kp-EKCertificate
// (2.23.133.8.1) (TCG EK Credential Profile for TPM Family 2.0, §3.2).
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
#include "vtpm/provision/tpm_key_cert.h"

namespace vmm::vtpm {

Result<std::vector<uint8_t>> IssueEkCertificate(const HostCa& ca, EVP_PKEY* ek_public, EkKind kind,
                                                const TpmIdentity& tpm, std::string_view vm_id);

// X509_verify_cert against `ca_cert_pem` as the only trust anchor (X509_V_FLAG_X509_STRICT,
// current time), then: not a CA certificate, tcg-kp-EKCertificate, and its public key equals
// `ek_public_pem` (pass the key from ReadEkPublic, i.e. from the TPM itself). The Error says
// which check failed.
Result<void> VerifyEkCertificate(std::span<const uint8_t> cert_der, std::string_view ca_cert_pem,
                                 std::string_view ek_public_pem);

}  // namespace vmm::vtpm
