// Owning pointers for the OpenSSL objects the verifier passes around, PEM helpers, and an Error
// that carries OpenSSL's error queue. The verifier links nothing of vtpm/, so it keeps its own.
//
//   ASSIGN_OR_RETURN(X509Ptr cert, CertFromPem(pem, "the AK certificate"));
//   EvpPkeyPtr key(X509_get_pubkey(cert.get()));
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::attestation {

struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// "<what>: <OpenSSL's queued errors>" (or "<what>" when the queue is empty); drains the queue.
Error OpenSslError(ErrorKind kind, const std::string& what);

// One certificate from PEM; `what` names it in the error. Trailing text after the first
// certificate is refused.
Result<X509Ptr> CertFromPem(std::string_view pem, const std::string& what);
// Every certificate of a PEM file (at least one), in order.
Result<std::vector<X509Ptr>> CertsFromPem(std::string_view pem, const std::string& what);
Result<std::string> CertToPem(X509* cert);
// SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY").
Result<std::string> PublicKeyToPem(EVP_PKEY* key);

}  // namespace vmm::attestation
