// Owning pointers for the OpenSSL objects the provisioning code passes around, and an
// Error that carries OpenSSL's error queue.
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

#include "base/result.h"

namespace vmm::vtpm {

struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

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
