#include "vtpm/provision/ek_cert.h"

namespace vmm::vtpm {

namespace {

constexpr TpmKeyCertProfile kRsaEkProfile = {"EK", "endorsement key", "vmm vTPM EK",
                                             "critical,keyEncipherment", "2.23.133.8.1"};
constexpr TpmKeyCertProfile kEccEkProfile = {"EK", "endorsement key", "vmm vTPM EK",
                                             "critical,keyAgreement", "2.23.133.8.1"};

}  // namespace

Result<std::vector<uint8_t>> IssueEkCertificate(const HostCa& ca, EVP_PKEY* ek_public, EkKind kind,
                                                const TpmIdentity& tpm, std::string_view vm_id) {
  return IssueTpmKeyCertificate(
      ca, ek_public, kind == EkKind::kRsa2048 ? kRsaEkProfile : kEccEkProfile, tpm, vm_id);
}

Result<void> VerifyEkCertificate(std::span<const uint8_t> cert_der, std::string_view ca_cert_pem,
                                 std::string_view ek_public_pem) {
  // The key usage differs by kind and is not checked here; the EKU is the same.
  return VerifyTpmKeyCertificate(cert_der, ca_cert_pem, ek_public_pem, kRsaEkProfile);
}

}  // namespace vmm::vtpm
