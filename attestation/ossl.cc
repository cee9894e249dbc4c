#include "attestation/ossl.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

namespace vmm::attestation {
namespace {

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

bool OnlyWhitespace(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

Error OpenSslError(ErrorKind kind, const std::string& what) {
  std::string queued;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!queued.empty()) queued += "; ";
    queued += buf;
  }
  return Error(kind, queued.empty() ? what : what + ": " + queued);
}

Result<std::vector<X509Ptr>> CertsFromPem(std::string_view pem, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError(ErrorKind::kInternal, "reading " + what);
  std::vector<X509Ptr> certs;
  for (;;) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the input reads as "no start line"
  char* rest = nullptr;
  long left = BIO_get_mem_data(bio.get(), &rest);
  if (certs.empty()) {
    return Error(ErrorKind::kProtocol, what + " is not a PEM certificate");
  }
  if (left > 0 && !OnlyWhitespace(std::string_view(rest, static_cast<size_t>(left)))) {
    return Error(ErrorKind::kProtocol, what + ": text after the last PEM certificate");
  }
  return certs;
}

Result<X509Ptr> CertFromPem(std::string_view pem, const std::string& what) {
  ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, CertsFromPem(pem, what));
  if (certs.size() != 1) {
    return Error(ErrorKind::kProtocol,
                 what + " holds " + std::to_string(certs.size()) + " certificates, not one");
  }
  return std::move(certs[0]);
}

Result<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError(ErrorKind::kInternal, "writing a certificate as PEM");
  }
  return BioText(bio.get());
}

Result<std::string> PublicKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return OpenSslError(ErrorKind::kInternal, "writing a public key as PEM");
  }
  return BioText(bio.get());
}

}  // namespace vmm::attestation
