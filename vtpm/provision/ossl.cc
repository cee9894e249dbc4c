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

// One PEM object through kWrite (PEM_write_bio_*); `what` names the call in the error.
template <typename T, auto kWrite>
Result<std::string> ToPem(T* obj, const char* what) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || kWrite(bio.get(), obj) != 1) return OpenSslError(what);
  return BioToString(bio.get());
}

// The first PEM object of `pem` through kRead (PEM_read_bio_*).
template <typename Ptr, auto kRead>
Result<Ptr> FromPem(std::string_view pem, const char* what) {
  BioPtr bio = ReadOnlyBio(pem);
  Ptr obj(bio ? kRead(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!obj) return OpenSslError(what);
  return obj;
}

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
  return ToPem<EVP_PKEY, PEM_write_bio_PUBKEY>(key, "PEM_write_bio_PUBKEY");
}

Result<EvpPkeyPtr> PublicKeyFromPem(std::string_view pem) {
  return FromPem<EvpPkeyPtr, PEM_read_bio_PUBKEY>(pem, "parsing a PEM public key");
}

Result<std::string> CertToPem(X509* cert) {
  return ToPem<X509, PEM_write_bio_X509>(cert, "PEM_write_bio_X509");
}

Result<X509Ptr> CertFromPem(std::string_view pem) {
  return FromPem<X509Ptr, PEM_read_bio_X509>(pem, "parsing a PEM certificate");
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
