#include "attestation/cert_checks.h"

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <memory>

namespace vmm::attestation {
namespace {

Error Bad(const std::string& what) { return Error(ErrorKind::kProtocol, what); }

struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * p) const { sk_X509_free(p); }
};
struct EkuFree {
  void operator()(EXTENDED_KEY_USAGE* p) const { EXTENDED_KEY_USAGE_free(p); }
};
struct ObjFree {
  void operator()(ASN1_OBJECT* p) const { ASN1_OBJECT_free(p); }
};

// X509_verify_cert with the anchor as the only trusted certificate (a partial chain is fine:
// the tenant may trust an intermediate), the chain as untrusted help, strict RFC 5280 checks.
Result<void> ChainsToAnchor(const CertAnchor& anchor, X509* cert, const std::string& what,
                            const X509* skip = nullptr) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  if (!store || !ctx || !untrusted || X509_STORE_add_cert(store.get(), anchor.ca.get()) != 1) {
    return OpenSslError(ErrorKind::kInternal, "setting up certificate verification");
  }
  for (const X509Ptr& c : anchor.intermediates) {
    if (c.get() != skip && sk_X509_push(untrusted.get(), c.get()) <= 0) {
      return OpenSslError(ErrorKind::kInternal, "setting up certificate verification");
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert, untrusted.get()) != 1) {
    return OpenSslError(ErrorKind::kInternal, "setting up certificate verification");
  }
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT | X509_V_FLAG_PARTIAL_CHAIN);
  if (anchor.at) X509_STORE_CTX_set_time(ctx.get(), 0, *anchor.at);
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    std::string where = depth == 0 ? "" : " (at chain depth " + std::to_string(depth) + ")";
    OpenSslError(ErrorKind::kProtocol, "");  // drain the queue
    return Bad(what + " does not verify against the trusted CA: " +
               X509_verify_cert_error_string(err) + where);
  }
  return Ok();
}

bool HasEku(X509* cert, std::string_view oid) {
  std::unique_ptr<EXTENDED_KEY_USAGE, EkuFree> eku(static_cast<EXTENDED_KEY_USAGE*>(
      X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  std::unique_ptr<ASN1_OBJECT, ObjFree> want(OBJ_txt2obj(std::string(oid).c_str(), 1));
  if (!eku || !want) return false;
  for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
    if (OBJ_cmp(sk_ASN1_OBJECT_value(eku.get(), i), want.get()) == 0) return true;
  }
  return false;
}

Result<void> EndEntity(X509* cert, const std::string& what) {
  if (X509_check_ca(cert) != 0) return Bad(what + " is a CA certificate");
  return Ok();
}

std::string IssuerText(X509* cert) {
  char buf[256];
  X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof(buf));
  return buf;
}

// The DER of the subjectAltName extension's value, or empty when there is none.
std::vector<uint8_t> SanDer(X509* cert) {
  int at = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
  if (at < 0) return {};
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(cert, at));
  return std::vector<uint8_t>(data->data, data->data + data->length);
}

}  // namespace

Result<Validity> ValidityOf(X509* cert) {
  auto unix_time = [](const ASN1_TIME* t, const char* what) -> Result<time_t> {
    struct tm tm {};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
      return OpenSslError(ErrorKind::kProtocol, std::string("reading a certificate's ") + what);
    }
    return timegm(&tm);
  };
  Validity v;
  ASSIGN_OR_RETURN(v.not_before, unix_time(X509_get0_notBefore(cert), "notBefore"));
  ASSIGN_OR_RETURN(v.not_after, unix_time(X509_get0_notAfter(cert), "notAfter"));
  return v;
}

std::string CommonName(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return "";
  const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, cn);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

Result<CertAnchor> LoadAnchor(std::string_view ca_pem, const std::vector<std::string>& chain_pem,
                              std::optional<time_t> at) {
  CertAnchor anchor;
  anchor.at = at;
  ASSIGN_OR_RETURN(anchor.ca, CertFromPem(ca_pem, "the trusted CA"));
  if (X509_check_ca(anchor.ca.get()) == 0) {
    return Error(ErrorKind::kInvalidArgument, "the trusted CA is not a CA certificate");
  }
  for (size_t i = 0; i < chain_pem.size(); ++i) {
    ASSIGN_OR_RETURN(X509Ptr cert,
                     CertFromPem(chain_pem[i], "ca_chain[" + std::to_string(i) + "]"));
    anchor.intermediates.push_back(std::move(cert));
  }
  return anchor;
}

Result<void> CheckCaChain(const CertAnchor& anchor) {
  for (size_t i = 0; i < anchor.intermediates.size(); ++i) {
    X509* cert = anchor.intermediates[i].get();
    if (X509_cmp(cert, anchor.ca.get()) == 0) continue;
    std::string what = "ca_chain[" + std::to_string(i) + "]";
    if (X509_check_ca(cert) == 0) return Bad(what + " is not a CA certificate");
    RETURN_IF_ERROR(ChainsToAnchor(anchor, cert, what, cert));
  }
  return Ok();
}

Result<X509Ptr> CheckAkCertificate(const CertAnchor& anchor, std::string_view pem,
                                   EVP_PKEY* ak_key) {
  if (pem.empty()) return Bad("the bundle has no AK certificate");
  ASSIGN_OR_RETURN(X509Ptr cert, CertFromPem(pem, "the AK certificate"));
  RETURN_IF_ERROR(ChainsToAnchor(anchor, cert.get(), "the AK certificate"));
  RETURN_IF_ERROR(EndEntity(cert.get(), "the AK certificate"));
  uint32_t ku = X509_get_key_usage(cert.get());
  if (ku == UINT32_MAX || (ku & KU_DIGITAL_SIGNATURE) == 0) {
    return Bad("the AK certificate's keyUsage lacks digitalSignature");
  }
  if (!HasEku(cert.get(), kOidTcgKpAikCertificate)) {
    return Bad("the AK certificate's extendedKeyUsage lacks tcg-kp-AIKCertificate (" +
               std::string(kOidTcgKpAikCertificate) + ")");
  }
  if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), ak_key) != 1) {
    return Bad("the AK certificate certifies another key than the bundle's AK");
  }
  return cert;
}

Result<X509Ptr> CheckEkCertificate(const CertAnchor& anchor, std::string_view pem) {
  ASSIGN_OR_RETURN(X509Ptr cert, CertFromPem(pem, "the EK certificate"));
  RETURN_IF_ERROR(ChainsToAnchor(anchor, cert.get(), "the EK certificate"));
  RETURN_IF_ERROR(EndEntity(cert.get(), "the EK certificate"));
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  bool rsa = key != nullptr && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
  uint32_t need = rsa ? KU_KEY_ENCIPHERMENT : KU_KEY_AGREEMENT;
  uint32_t ku = X509_get_key_usage(cert.get());
  if (ku == UINT32_MAX || (ku & need) == 0) {
    return Bad(std::string("the EK certificate's keyUsage lacks ") +
               (rsa ? "keyEncipherment (RSA EK)" : "keyAgreement (ECC EK)"));
  }
  if (!HasEku(cert.get(), kOidTcgKpEkCertificate)) {
    return Bad("the EK certificate's extendedKeyUsage lacks tcg-kp-EKCertificate (" +
               std::string(kOidTcgKpEkCertificate) + ")");
  }
  return cert;
}

Result<std::string> CheckAkBinding(X509* ak_cert, X509* ek_cert) {
  std::string ak_cn = CommonName(ak_cert);
  std::string ek_cn = CommonName(ek_cert);
  if (ak_cn.rfind(kAkSubjectPrefix, 0) != 0 || ak_cn.size() == kAkSubjectPrefix.size()) {
    return Bad("the AK certificate's subject CN \"" + ak_cn + "\" is not \"" +
               std::string(kAkSubjectPrefix) + "<vm-id>\"");
  }
  if (ek_cn.rfind(kEkSubjectPrefix, 0) != 0) {
    return Bad("the EK certificate's subject CN \"" + ek_cn + "\" is not \"" +
               std::string(kEkSubjectPrefix) + "<vm-id>\"");
  }
  std::string vm_id = ak_cn.substr(kAkSubjectPrefix.size());
  if (ek_cn.substr(kEkSubjectPrefix.size()) != vm_id) {
    return Bad("the AK certificate names vm-id \"" + vm_id + "\", the EK certificate \"" +
               ek_cn.substr(kEkSubjectPrefix.size()) + "\"");
  }
  if (X509_NAME_cmp(X509_get_issuer_name(ak_cert), X509_get_issuer_name(ek_cert)) != 0) {
    return Bad("the AK certificate was issued by " + IssuerText(ak_cert) +
               ", the EK certificate by " + IssuerText(ek_cert));
  }
  std::vector<uint8_t> ak_san = SanDer(ak_cert);
  if (ak_san.empty()) return Bad("the AK certificate has no subjectAltName naming the TPM");
  if (ak_san != SanDer(ek_cert)) {
    return Bad("the AK and EK certificates name different TPMs (subjectAltName differs)");
  }
  return vm_id;
}

}  // namespace vmm::attestation
