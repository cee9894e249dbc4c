#include "vtpm/provision/ak_cert.h"

namespace vmm::vtpm {

Result<std::vector<uint8_t>> IssueAkCertificate(const HostCa& ca, EVP_PKEY* ak_public,
                                                const TpmIdentity& tpm, std::string_view vm_id) {
  return IssueTpmKeyCertificate(ca, ak_public, kAkCertProfile, tpm, vm_id);
}

Result<void> VerifyAkCertificate(std::span<const uint8_t> cert_der, std::string_view ca_cert_pem,
                                 std::string_view ak_public_pem) {
  return VerifyTpmKeyCertificate(cert_der, ca_cert_pem, ak_public_pem, kAkCertProfile);
}

}  // namespace vmm::vtpm
