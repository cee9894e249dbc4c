// PEM/DER helpers for the provisioning code and an Error that carries OpenSSL's error queue;
// the owning pointers are base/openssl_ptr.h's.
//
//   EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
//   if (!key) return OpenSslError("generating the CA key");
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/openssl_ptr.h"
#include "base/result.h"

namespace vmm::vtpm {

using vmm::BioPtr;
using vmm::EvpPkeyPtr;
using vmm::X509Ptr;

// ErrorKind::kInternal, "<what>: <OpenSSL's queued errors>"; drains the queue.
Error OpenSslError(const std::string& what);

// PEM <-> objects. Public keys are SubjectPublicKeyInfo ("BEGIN PUBLIC KEY").
Result<std::string> PublicKeyToPem(EVP_PKEY* key);
Result<EvpPkeyPtr> PublicKeyFromPem(std::string_view pem);
Result<std::string> CertToPem(X509* cert);
Result<X509Ptr> CertFromPem(std::string_view pem);
Result<std::vector<uint8_t>> CertToDer(X509* cert);
Result<X509Ptr> CertFromDer(std::span<const uint8_t> der);

}  // namespace vmm::vtpm
