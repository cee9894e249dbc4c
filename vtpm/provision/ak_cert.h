// AK certificates issued by the host vTPM CA, and their verification. Pure OpenSSL: the TPM
// side (the AK, the credential challenge, NV storage) is ak_provision.h.
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> der, IssueAkCertificate(ca, ak_key, identity, "vm-1"));
//   RETURN_IF_ERROR(VerifyAkCertificate(der, ca_pem, ak_public_pem));
//
// Profile: tpm_key_cert.h's, with subject "CN=vmm vTPM AK <vm-id>", keyUsage critical
// digitalSignature, extendedKeyUsage tcg-kp-AIKCertificate (2.23.133.8.3), and the same
// subjectAltName (TPM manufacturer, model, version) as the EK certificates.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vtpm/provision/host_ca.h"
#include "vtpm/provision/tpm_key_cert.h"

namespace vmm::vtpm {

inline constexpr TpmKeyCertProfile kAkCertProfile = {"AK", "attestation key", "vmm vTPM AK",
                                                     "critical,digitalSignature", "2.23.133.8.3"};

Result<std::vector<uint8_t>> IssueAkCertificate(const HostCa& ca, EVP_PKEY* ak_public,
                                                const TpmIdentity& tpm, std::string_view vm_id);

// VerifyTpmKeyCertificate with the AK profile: the CA chain, not a CA, tcg-kp-AIKCertificate,
// and the key equal to `ak_public_pem` (the AK as the TPM recreates it).
Result<void> VerifyAkCertificate(std::span<const uint8_t> cert_der, std::string_view ca_cert_pem,
                                 std::string_view ak_public_pem);

}  // namespace vmm::vtpm
