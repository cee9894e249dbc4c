#include "vtpm/provision/ossl.h"

#include <openssl/err.h>
#include <openssl/pem.h>

namespace vmm::vtpm {

namespace {

Result<std::string> BioToString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0 || data == nullptr) return OpenSslError("reading a memory BIO");
  return std::string(data, size_t(n));
}

BioPtr ReadOnlyBio(std::string_view s) { return BioPtr(BIO_new_mem_buf(s.data(), int(s.size()))); }

}  // namespace

Error OpenSslError(const std::string& what) {
  std::string msg = what;
  unsigned long e;
  bool first = true;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += first ? ": " : "; ";
    msg += buf;
    first = false;
  }
  if (first) msg += ": OpenSSL failed without a reason";
  return Error(ErrorKind::kInternal, msg);
}

Result<std::string> PublicKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return OpenSslError("PEM_write_bio_PUBKEY");
  }
  return BioToString(bio.get());
}

Result<EvpPkeyPtr> PublicKeyFromPem(std::string_view pem) {
  BioPtr bio = ReadOnlyBio(pem);
  EvpPkeyPtr key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return OpenSslError("parsing a PEM public key");
  return key;
}

Result<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("PEM_write_bio_X509");
  return BioToString(bio.get());
}

Result<X509Ptr> CertFromPem(std::string_view pem) {
  BioPtr bio = ReadOnlyBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return OpenSslError("parsing a PEM certificate");
  return cert;
}

Result<std::vector<uint8_t>> CertToDer(X509* cert) {
  int n = i2d_X509(cert, nullptr);
  if (n <= 0) return OpenSslError("i2d_X509");
  std::vector<uint8_t> der(static_cast<size_t>(n));
  unsigned char* p = der.data();
  if (i2d_X509(cert, &p) != n) return OpenSslError("i2d_X509");
  return der;
}

Result<X509Ptr> CertFromDer(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, long(der.size())));
  if (!cert) return OpenSslError("parsing a DER certificate");
  if (p != der.data() + der.size()) {
    return Error(ErrorKind::kProtocol, "DER certificate has trailing bytes");
  }
  return cert;
}

}  // namespace vmm::vtpm
