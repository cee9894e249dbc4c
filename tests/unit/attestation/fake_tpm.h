// A software "TPM" and PKI for the verifier's tests: an OpenSSL P-256 key as the AK, its
// TPMT_PUBLIC, quotes (TPMS_ATTEST) and signatures (TPMT_SIGNATURE) marshalled with tss2-mu,
// a test CA issuing AK and EK certificates in the vTPM CA's profile (or deliberately not), and
// a measured-boot event log in the manager's scheme (ARCHITECTURE.md §6). Header-only, for the
// unit and integration tests alike.
//
//   FakeTpm tpm;  TestCa ca("vmm test CA");
//   Evidence e = MakeEvidence(tpm, ca, nonce);
//   VerifyResult r = Verify(e, {.ca_pem = ca.pem(), .nonce = nonce});
#pragma once

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_mu.h>

#include <cstring>
#include <ctime>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/event_log.h"
#include "attestation/evidence.h"
#include "attestation/ossl.h"

namespace vmm::attestation::fake {

using Bytes = std::vector<uint8_t>;
using PcrValues = std::map<uint16_t, std::map<uint32_t, Bytes>>;

inline void Require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("fake TPM: ") + what);
}

inline EvpPkeyPtr NewP256() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  Require(key != nullptr, "P-256 keygen");
  return key;
}

inline Bytes Hash(const EVP_MD* md, std::span<const uint8_t> data) {
  uint8_t out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  Require(EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) == 1, "digest");
  return Bytes(out, out + len);
}

inline const EVP_MD* MdOf(uint16_t alg) {
  return alg == TPM2_ALG_SHA384   ? EVP_sha384()
         : alg == TPM2_ALG_SHA512 ? EVP_sha512()
                                  : EVP_sha256();
}

inline std::string PemOf(EVP_PKEY* key, bool priv) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (priv) {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_bio_PUBKEY(bio, key);
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<size_t>(len));
  BIO_free(bio);
  return s;
}

// ---------------------------------------------------------------- the TPM side
struct QuoteParams {
  std::vector<std::pair<uint16_t, std::vector<uint32_t>>> selection = {
      {TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
      {TPM2_ALG_SHA384, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}};
  uint16_t sig_hash = TPM2_ALG_SHA256;
  uint32_t magic = TPM2_GENERATED_VALUE;
  uint16_t type = TPM2_ST_ATTEST_QUOTE;
  uint64_t clock = 123456;
  uint32_t reset_count = 2;
  uint32_t restart_count = 1;
  std::optional<Bytes> signer;  // default: the AK's qualified name (endorsement primary)
};

class FakeTpm {
 public:
  explicit FakeTpm(uint32_t attributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                                         TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                         TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH)
      : key_(NewP256()) {
    TPMT_PUBLIC pub{};
    pub.type = TPM2_ALG_ECC;
    pub.nameAlg = TPM2_ALG_SHA256;
    pub.objectAttributes = attributes;
    pub.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    pub.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    pub.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    pub.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    Coordinate(OSSL_PKEY_PARAM_EC_PUB_X, pub.unique.ecc.x);
    Coordinate(OSSL_PKEY_PARAM_EC_PUB_Y, pub.unique.ecc.y);
    uint8_t buf[sizeof(TPMT_PUBLIC)];
    size_t off = 0;
    Require(Tss2_MU_TPMT_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off) == TSS2_RC_SUCCESS,
            "marshal TPMT_PUBLIC");
    public_.assign(buf, buf + off);
    Bytes h = Hash(EVP_sha256(), public_);
    name_ = {0x00, 0x0b};
    name_.insert(name_.end(), h.begin(), h.end());
    // Qualified name as a primary key of the endorsement hierarchy (TPM_RH_ENDORSEMENT).
    Bytes handle_and_name = {0x40, 0x00, 0x00, 0x0b};
    handle_and_name.insert(handle_and_name.end(), name_.begin(), name_.end());
    Bytes qh = Hash(EVP_sha256(), handle_and_name);
    qualified_name_ = {0x00, 0x0b};
    qualified_name_.insert(qualified_name_.end(), qh.begin(), qh.end());
  }

  const Bytes& public_area() const { return public_; }
  const Bytes& name() const { return name_; }
  const Bytes& qualified_name() const { return qualified_name_; }
  EVP_PKEY* key() const { return key_.get(); }

  Bytes Attest(const PcrValues& pcrs, const Bytes& nonce, const QuoteParams& p = {}) const {
    TPMS_ATTEST a{};
    a.magic = p.magic;
    a.type = p.type;
    const Bytes& signer = p.signer ? *p.signer : qualified_name_;
    a.qualifiedSigner.size = static_cast<uint16_t>(signer.size());
    std::memcpy(a.qualifiedSigner.name, signer.data(), signer.size());
    a.extraData.size = static_cast<uint16_t>(nonce.size());
    std::memcpy(a.extraData.buffer, nonce.data(), nonce.size());
    a.clockInfo = {p.clock, p.reset_count, p.restart_count, 1};
    a.firmwareVersion = 0x2019080600000000ull;
    Bytes concat;
    if (p.type == TPM2_ST_ATTEST_QUOTE) {
      TPML_PCR_SELECTION& sel = a.attested.quote.pcrSelect;
      for (const auto& [alg, list] : p.selection) {
        TPMS_PCR_SELECTION& s = sel.pcrSelections[sel.count++];
        s.hash = alg;
        s.sizeofSelect = 3;
        for (uint32_t pcr : list) {
          s.pcrSelect[pcr / 8] |= static_cast<uint8_t>(1u << (pcr % 8));
          auto bank = pcrs.find(alg);
          if (bank != pcrs.end() && bank->second.count(pcr)) {
            const Bytes& v = bank->second.at(pcr);
            concat.insert(concat.end(), v.begin(), v.end());
          }
        }
      }
      Bytes d = Hash(MdOf(p.sig_hash), concat);
      a.attested.quote.pcrDigest.size = static_cast<uint16_t>(d.size());
      std::memcpy(a.attested.quote.pcrDigest.buffer, d.data(), d.size());
    } else {
      a.attested.certify.name.size = static_cast<uint16_t>(name_.size());
      std::memcpy(a.attested.certify.name.name, name_.data(), name_.size());
    }
    uint8_t buf[sizeof(TPMS_ATTEST)];
    size_t off = 0;
    Require(Tss2_MU_TPMS_ATTEST_Marshal(&a, buf, sizeof(buf), &off) == TSS2_RC_SUCCESS,
            "marshal TPMS_ATTEST");
    return Bytes(buf, buf + off);
  }

  Bytes Sign(const Bytes& attest, uint16_t hash = TPM2_ALG_SHA256) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    Require(EVP_DigestSignInit(ctx, nullptr, MdOf(hash), nullptr, key_.get()) == 1 &&
                EVP_DigestSign(ctx, nullptr, &len, attest.data(), attest.size()) == 1,
            "sign");
    Bytes der(len);
    Require(EVP_DigestSign(ctx, der.data(), &len, attest.data(), attest.size()) == 1, "sign");
    EVP_MD_CTX_free(ctx);
    const unsigned char* p = der.data();
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
    TPMT_SIGNATURE t{};
    t.sigAlg = TPM2_ALG_ECDSA;
    t.signature.ecdsa.hash = hash;
    t.signature.ecdsa.signatureR.size = static_cast<uint16_t>(
        BN_bn2binpad(ECDSA_SIG_get0_r(sig), t.signature.ecdsa.signatureR.buffer, 32));
    t.signature.ecdsa.signatureS.size = static_cast<uint16_t>(
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), t.signature.ecdsa.signatureS.buffer, 32));
    ECDSA_SIG_free(sig);
    uint8_t buf[sizeof(TPMT_SIGNATURE)];
    size_t off = 0;
    Require(Tss2_MU_TPMT_SIGNATURE_Marshal(&t, buf, sizeof(buf), &off) == TSS2_RC_SUCCESS,
            "marshal TPMT_SIGNATURE");
    return Bytes(buf, buf + off);
  }

 private:
  void Coordinate(const char* which, TPM2B_ECC_PARAMETER& out) {
    BIGNUM* bn = nullptr;
    Require(EVP_PKEY_get_bn_param(key_.get(), which, &bn) == 1, "EC coordinate");
    out.size = 32;
    BN_bn2binpad(bn, out.buffer, 32);
    BN_free(bn);
  }

  EvpPkeyPtr key_;
  Bytes public_;
  Bytes name_;
  Bytes qualified_name_;
};

// ---------------------------------------------------------------- the PKI side
struct CertSpec {
  std::string cn;  // subject CN ("" for none)
  bool ca = false;
  std::string key_usage = "critical,digitalSignature";
  std::string eku = "2.23.133.8.3";  // "" for none
  long not_before = -300;            // seconds from now
  long not_after = 365L * 24 * 3600;
  bool tpm_san = true;  // subjectAltName directoryName naming the TPM
  std::string tpm_model = "swtpm";
};

class TestCa {
 public:
  explicit TestCa(const std::string& cn) : key_(NewP256()) {
    CertSpec spec = CaSpec(cn);
    spec.not_after = 10L * 365 * 24 * 3600;
    cert_ = Make(spec, key_.get());
  }
  // A CA certified by `parent` (an intermediate).
  TestCa(const std::string& cn, const TestCa& parent) : key_(NewP256()) {
    cert_ = parent.Make(CaSpec(cn), key_.get());
  }

  std::string pem() const { return CertToPem(cert_.get()).value(); }
  X509* cert() const { return cert_.get(); }

  std::string Issue(const CertSpec& spec, EVP_PKEY* subject_key) const {
    X509Ptr c = Make(spec, subject_key);
    return CertToPem(c.get()).value();
  }

 private:
  // A CA's certificate: keyCertSign and cRLSign, no EKU, no TPM subjectAltName.
  static CertSpec CaSpec(const std::string& cn) {
    CertSpec spec;
    spec.cn = cn;
    spec.ca = true;
    spec.key_usage = "critical,keyCertSign,cRLSign";
    spec.eku = "";
    spec.tpm_san = false;
    return spec;
  }
  X509Ptr Make(const CertSpec& spec, EVP_PKEY* subject_key) const {
    X509Ptr c(X509_new());
    X509_set_version(c.get(), X509_VERSION_3);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial++);
    X509_NAME* name = X509_NAME_new();
    if (!spec.cn.empty()) {
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1,
                                 0);
    }
    X509_set_subject_name(c.get(), name);
    X509_NAME_free(name);
    // Self-signed when this CA makes its own certificate (no cert_ yet), else issued by us.
    bool self = !cert_;
    X509_set_issuer_name(
        c.get(), self ? X509_get_subject_name(c.get()) : X509_get_subject_name(cert_.get()));
    X509_gmtime_adj(X509_getm_notBefore(c.get()), spec.not_before);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), spec.not_after);
    X509_set_pubkey(c.get(), subject_key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, self ? c.get() : cert_.get(), c.get(), nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      Require(ext != nullptr, "extension");
      X509_add_ext(c.get(), ext, -1);
      X509_EXTENSION_free(ext);
    };
    add(NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    if (!spec.key_usage.empty()) add(NID_key_usage, spec.key_usage);
    if (!spec.eku.empty()) add(NID_ext_key_usage, spec.eku);
    add(NID_subject_key_identifier, "hash");
    if (!self) add(NID_authority_key_identifier, "keyid:always");
    if (spec.tpm_san) {
      X509_NAME* dir = X509_NAME_new();
      auto entry = [&](const char* oid, const std::string& v, int set) {
        ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
        X509_NAME_add_entry_by_OBJ(dir, obj, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1, set);
        ASN1_OBJECT_free(obj);
      };
      entry("2.23.133.2.1", "id:49424D00", 0);
      entry("2.23.133.2.2", spec.tpm_model, 1);
      entry("2.23.133.2.3", "id:20191023", 1);
      GENERAL_NAME* gn = GENERAL_NAME_new();
      GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dir);
      GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
      sk_GENERAL_NAME_push(names, gn);
      X509_add1_ext_i2d(c.get(), NID_subject_alt_name, names, spec.cn.empty() ? 1 : 0,
                        X509V3_ADD_DEFAULT);
      GENERAL_NAMES_free(names);
    }
    Require(X509_sign(c.get(), key_.get(), EVP_sha256()) > 0, "sign certificate");
    return c;
  }

  EvpPkeyPtr key_;
  X509Ptr cert_;
};

inline CertSpec AkSpec(const std::string& vm_id = "vm-1") {
  CertSpec s;
  s.cn = "vmm vTPM AK " + vm_id;
  return s;
}
inline CertSpec EkSpec(const std::string& vm_id = "vm-1") {
  CertSpec s;
  s.cn = "vmm vTPM EK " + vm_id;
  s.key_usage = "critical,keyAgreement";
  s.eku = "2.23.133.8.1";
  return s;
}

// ---------------------------------------------------------------- measured boot
struct BootImages {
  std::string kernel = "a kernel image";
  std::string initramfs = "an initramfs";
  std::string cmdline = "console=ttyS0 root=/dev/vda";
  std::string configuration = R"({"cpus":1,"memory":536870912,"schema":"vmm-config/1"})";
  std::string crtm = "vmm 0.1.0";
};

inline Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

// The manager's scheme (vmm/manager/measured_boot.h), with the EventLogBuilder.
inline Bytes MakeBootLog(const BootImages& img = {}) {
  EventLogBuilder b;
  Require(b.AddStartupLocality(3).has_value(), "log");
  Require(b.AddSCrtmVersion(B(img.crtm)).has_value(), "log");
  Require(b.AddPlatformConfigFlags(B(img.configuration), 1).has_value(), "log");
  Require(b.Measure(1, kEvPlatformConfigFlags, B("ACPI DSDT"), B("DSDT table bytes")).has_value(),
          "log");
  Require(b.Measure(4, kEvIpl, B("kernel"), B(img.kernel)).has_value(), "log");
  Require(b.AddIpl(8, img.cmdline).has_value(), "log");
  Require(b.Measure(9, kEvIpl, B("initramfs"), B(img.initramfs)).has_value(), "log");
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) Require(b.AddSeparator(pcr).has_value(), "log");
  return b.bytes();
}

// The PCR values the log leads to, for PCRs 0-9 of every bank (what the vTPM would hold).
inline PcrValues PcrsOfLog(const Bytes& log_bytes) {
  auto log = ParseEventLog(log_bytes);
  Require(log.has_value(), "parse log");
  auto replay = ReplayEventLog(*log);
  Require(replay.has_value(), "replay log");
  PcrValues out;
  for (const PcrBank& bank : *replay) {
    for (uint32_t pcr = 0; pcr < kNumPcrs; ++pcr) out[bank.alg][pcr] = bank.pcrs[pcr];
  }
  return out;
}

// A complete, valid bundle: the log of `img`, the vTPM's PCRs 0-9 in both banks quoted with
// `nonce`, the AK and EK certificates from `ca`.
struct EvidenceParts {
  BootImages images;
  QuoteParams quote;
  CertSpec ak_cert = AkSpec();
  CertSpec ek_cert = EkSpec();
  bool with_ek = true;
};

inline Evidence MakeEvidence(const FakeTpm& tpm, const TestCa& ca, const Bytes& nonce,
                             const EvidenceParts& parts = {}) {
  Evidence e;
  e.nonce = nonce;
  e.event_log = MakeBootLog(parts.images);
  PcrValues all = PcrsOfLog(e.event_log);
  for (const auto& [alg, list] : parts.quote.selection) {
    for (uint32_t pcr : list) e.pcrs[alg][pcr] = all[alg][pcr];
  }
  e.attest = tpm.Attest(e.pcrs, nonce, parts.quote);
  e.signature = tpm.Sign(e.attest, parts.quote.sig_hash);
  e.ak_public = tpm.public_area();
  e.ak_certificate_pem = ca.Issue(parts.ak_cert, tpm.key());
  if (parts.with_ek) {
    EvpPkeyPtr ek = NewP256();
    e.ek_certificate_pem = ca.Issue(parts.ek_cert, ek.get());
  }
  e.ca_chain_pem = {ca.pem()};
  return e;
}

// The reference-value policy of a log, as the tenant makes it (`vmm measure --policy-out`, or
// PolicyFromEventLog of the parsed log); throws when the log is not of the manager's scheme.
inline Policy PolicyOfLog(std::span<const uint8_t> log_bytes, std::string id) {
  auto log = ParseEventLog(log_bytes);
  if (!log) throw std::runtime_error("fake TPM: the log does not parse: " + log.error().message());
  auto policy = PolicyFromEventLog(*log, std::move(id));
  if (!policy)
    throw std::runtime_error("fake TPM: no policy of the log: " + policy.error().message());
  return std::move(*policy);
}

}  // namespace vmm::attestation::fake
