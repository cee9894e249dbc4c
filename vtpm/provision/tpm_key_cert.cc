#include "vtpm/provision/tpm_key_cert.h"

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include "vtpm/provision/ossl.h"
#include "vtpm/provision/x509_build.h"

namespace vmm::vtpm {

namespace {

constexpr long kValidityDays = 3653;  // capped at the CA's notAfter

std::string IdString(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "id:%08X", v);
  return buf;
}

// TCG EK Credential Profile §3.2.9: the TPM's manufacturer, model and version as a
// directoryName, the three attributes in one RDN (as in the profile's example).
Result<void> AddTpmSubjectAltName(X509* cert, const TpmIdentity& tpm, bool critical) {
  X509NamePtr dir(X509_NAME_new());
  if (!dir) return OpenSslError("X509_NAME_new");
  const std::pair<const char*, std::string> attrs[] = {
      {"2.23.133.2.1", IdString(tpm.manufacturer)},
      {"2.23.133.2.2", tpm.model.empty() ? std::string("unknown") : tpm.model},
      {"2.23.133.2.3", IdString(tpm.firmware_version)},
  };
  bool first = true;
  for (const auto& [oid, value] : attrs) {
    Asn1ObjectPtr obj(OBJ_txt2obj(oid, 1));
    // set 0: a new RDN; -1: added to the previous RDN (a multi-valued RDN).
    if (!obj || X509_NAME_add_entry_by_OBJ(dir.get(), obj.get(), MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>(value.c_str()),
                                           -1, -1, first ? 0 : -1) != 1) {
      return OpenSslError(std::string("adding TCG attribute ") + oid);
    }
    first = false;
  }
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* gn = GENERAL_NAME_new();
  if (!names || gn == nullptr) {
    GENERAL_NAME_free(gn);
    return OpenSslError("GENERAL_NAME_new");
  }
  gn->type = GEN_DIRNAME;
  gn->d.directoryName = dir.release();
  if (sk_GENERAL_NAME_push(names.get(), gn) <= 0) {
    GENERAL_NAME_free(gn);
    return OpenSslError("sk_GENERAL_NAME_push");
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), critical ? 1 : 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError("adding the subjectAltName");
  }
  return Ok();
}

bool HasExtendedKeyUsage(X509* cert, const char* oid) {
  ExtendedKeyUsagePtr eku(static_cast<EXTENDED_KEY_USAGE*>(
      X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  if (!eku) return false;
  Asn1ObjectPtr want(OBJ_txt2obj(oid, 1));
  if (!want) return false;
  for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
    if (OBJ_cmp(sk_ASN1_OBJECT_value(eku.get(), i), want.get()) == 0) return true;
  }
  return false;
}

}  // namespace

Result<std::vector<uint8_t>> IssueTpmKeyCertificate(const HostCa& ca, EVP_PKEY* key,
                                                    const TpmKeyCertProfile& profile,
                                                    const TpmIdentity& tpm,
                                                    std::string_view vm_id) {
  const std::string what = std::string(profile.what) + " certificate";
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  RETURN_IF_ERROR(SetV3SerialAndValidity(cert.get(), kValidityDays, ca.cert()));
  X509NamePtr subject(X509_NAME_new());
  if (!vm_id.empty()) {
    ASSIGN_OR_RETURN(subject,
                     CommonName(std::string(profile.subject_prefix) + " " + std::string(vm_id)));
  }
  if (!subject || X509_set_subject_name(cert.get(), subject.get()) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert())) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("filling the " + what);
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.cert(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.cert(), NID_key_usage, profile.key_usage));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.cert(), NID_ext_key_usage, profile.eku_oid));
  RETURN_IF_ERROR(AddTpmSubjectAltName(cert.get(), tpm, vm_id.empty()));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca.cert(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), ca.key(), EVP_sha256()) <= 0) {
    return OpenSslError("signing the " + what);
  }
  return CertToDer(cert.get());
}

Result<void> VerifyTpmKeyCertificate(std::span<const uint8_t> cert_der,
                                     std::string_view ca_cert_pem, std::string_view key_pem,
                                     const TpmKeyCertProfile& profile) {
  const std::string what = std::string(profile.what) + " certificate";
  ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(cert_der));
  ASSIGN_OR_RETURN(X509Ptr ca, CertFromPem(ca_cert_pem));
  ASSIGN_OR_RETURN(EvpPkeyPtr key, PublicKeyFromPem(key_pem));
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return OpenSslError("setting up " + what + " verification");
  }
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    return Error(ErrorKind::kProtocol, what + " does not verify against the vTPM CA: " +
                                           X509_verify_cert_error_string(err));
  }
  if (X509_check_ca(cert.get()) != 0) {
    return Error(ErrorKind::kProtocol, what + " is a CA certificate");
  }
  if (!HasExtendedKeyUsage(cert.get(), profile.eku_oid)) {
    return Error(ErrorKind::kProtocol,
                 what + " lacks the extended key usage " + std::string(profile.eku_oid));
  }
  if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) != 1) {
    return Error(ErrorKind::kProtocol,
                 what + "'s public key is not the TPM's " + std::string(profile.key_name));
  }
  return Ok();
}

}  // namespace vmm::vtpm
