// PEM helpers for the verifier and an Error that carries OpenSSL's error queue (the owning
// pointers are base/openssl_ptr.h's). The verifier links nothing of vtpm/, so it keeps its own.
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

#include "base/openssl_ptr.h"
#include "base/result.h"

namespace vmm::attestation {

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
