#include "vtpm/provision/x509_build.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "vtpm/provision/ossl.h"

namespace vmm::vtpm {

Result<void> SetV3SerialAndValidity(X509* cert, long days, X509* not_after_cap) {
  if (X509_set_version(cert, X509_VERSION_3) != 1) return OpenSslError("X509_set_version");
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return OpenSslError("RAND_bytes");
  rnd[0] = uint8_t((rnd[0] & 0x7f) | 0x40);  // positive, and never zero
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(rnd, sizeof rnd, nullptr), BN_free);
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("setting the serial number");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(cert), -5 * 60) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), int(days), 0, nullptr) == nullptr) {
    return OpenSslError("setting the validity");
  }
  if (not_after_cap != nullptr &&
      ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(not_after_cap)) > 0) {
    if (X509_set1_notAfter(cert, X509_get0_notAfter(not_after_cap)) != 1) {
      return OpenSslError("capping the validity");
    }
  }
  return Ok();
}

Result<X509NamePtr> CommonName(const std::string& cn) {
  X509NamePtr name(X509_NAME_new());
  if (!name || X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                          reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                          -1, 0) != 1) {
    return OpenSslError("building the name CN=" + cn);
  }
  return name;
}

Result<void> AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return OpenSslError(std::string("building extension ") + OBJ_nid2sn(nid));
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError(std::string("adding extension ") + OBJ_nid2sn(nid));
  return Ok();
}

}  // namespace vmm::vtpm
