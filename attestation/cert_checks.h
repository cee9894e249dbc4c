// The verifier's certificate checks (ARCHITECTURE.md §6): the bundle's CA chain, the AK and EK
// certificates, and the binding between them. The only trust anchor is the CA certificate the
// tenant brings (`vmm-verify --ca`); the bundle's ca_chain is used only as untrusted
// intermediates.
//
//   ASSIGN_OR_RETURN(CertAnchor anchor, LoadAnchor(ca_pem, evidence.ca_chain_pem, at));
//   RETURN_IF_ERROR(CheckCaChain(anchor));
//   ASSIGN_OR_RETURN(X509Ptr ak_cert, CheckAkCertificate(anchor, ak_pem, ak.key.get()));
//   ASSIGN_OR_RETURN(X509Ptr ek_cert, CheckEkCertificate(anchor, ek_pem));
//   ASSIGN_OR_RETURN(std::string vm_id, CheckAkBinding(ak_cert.get(), ek_cert.get()));
//
// Profiles (RFC 5280; TCG EK Credential Profile 2.0 §3.2):
//   AK: subject "CN=vmm vTPM AK <vm-id>", not a CA, keyUsage digitalSignature, extendedKeyUsage
//       tcg-kp-AIKCertificate (2.23.133.8.3), subjectAltName directoryName naming the TPM
//       (manufacturer, model, version), public key = the AK of the quote.
//   EK: subject "CN=vmm vTPM EK <vm-id>", not a CA, keyUsage keyEncipherment (RSA) or
//       keyAgreement (ECC), extendedKeyUsage tcg-kp-EKCertificate (2.23.133.8.1), the same
//       subjectAltName.
// Binding: the CA issues the AK certificate only after its own MakeCredential challenge to the
// EK was answered by TPM2_ActivateCredential in the same TPM, which proves the AK (its name is
// in the credential) lives beside that EK. A verifier cannot see the challenge; what it checks
// is what the CA wrote after it: both certificates come from the same issuer and name the same
// vm-id and the same TPM (identical subjectAltName).
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/ossl.h"
#include "base/result.h"

namespace vmm::attestation {

inline constexpr std::string_view kOidTcgKpEkCertificate = "2.23.133.8.1";
inline constexpr std::string_view kOidTcgKpAikCertificate = "2.23.133.8.3";
inline constexpr std::string_view kAkSubjectPrefix = "vmm vTPM AK ";
inline constexpr std::string_view kEkSubjectPrefix = "vmm vTPM EK ";

struct CertAnchor {
  X509Ptr ca;                          // the tenant's CA: the only trust anchor
  std::vector<X509Ptr> intermediates;  // the bundle's ca_chain, untrusted
  std::optional<time_t> at;            // verification time; nullopt: now
};

// Parses the tenant's CA (one PEM certificate that is a CA) and the bundle's chain.
Result<CertAnchor> LoadAnchor(std::string_view ca_pem, const std::vector<std::string>& chain_pem,
                              std::optional<time_t> at);

// Each ca_chain certificate is the anchor itself or a CA certificate that chains to it.
Result<void> CheckCaChain(const CertAnchor& anchor);

// The AK certificate chains to the anchor, is valid at the anchor's time, fits the AK profile,
// and certifies `ak_key`.
Result<X509Ptr> CheckAkCertificate(const CertAnchor& anchor, std::string_view pem,
                                   EVP_PKEY* ak_key);

// The EK certificate chains to the anchor, is valid then, and fits the EK profile.
Result<X509Ptr> CheckEkCertificate(const CertAnchor& anchor, std::string_view pem);

// The AK and EK certificates are bound (header): returns the vm-id they both name.
Result<std::string> CheckAkBinding(X509* ak_cert, X509* ek_cert);

// A certificate's notBefore and notAfter as Unix times.
struct Validity {
  time_t not_before = 0;
  time_t not_after = 0;
};
Result<Validity> ValidityOf(X509* cert);

// The subject's common name, or "" when it has none.
std::string CommonName(X509* cert);

}  // namespace vmm::attestation
