// The attestation key (vtpm/provision/ak_*.h, credential.h) against libtpms in a forked child:
// the template byte for byte, KDFa against OpenSSL's SP 800-108 KDF, the software
// MakeCredential activated by the TPM (and tpm2-tools' one, for comparison), a credential for
// another Name refused, and the provisioned AK certificate checked against the CA and the
// recreated AK.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_mu.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include "base/hex.h"
#include "tests/unit/common/temp_dir.h"
#include "tests/unit/vtpm/forked_tpm.h"
#include "vtpm/provision/ak_cert.h"
#include "vtpm/provision/ak_provision.h"
#include "vtpm/provision/credential.h"
#include "vtpm/provision/ek_provision.h"

namespace vmm::vtpm {
namespace {

using testing_util::TempDir;
using Bytes = std::vector<uint8_t>;

// TPM2_ActivateCredential with the AK and the RSA EK, as ak_provision.cc does, for blobs made
// elsewhere (tpm2-tools, the TPM itself).
Result<Bytes> Activate(ESYS_CONTEXT* esys, const PrimaryKey& ak, const PrimaryKey& ek,
                       const TPM2B_ID_OBJECT& id, const TPM2B_ENCRYPTED_SECRET& secret) {
  ESYS_TR session = ESYS_TR_NONE;
  TPMT_SYM_DEF sym = {};
  sym.algorithm = TPM2_ALG_NULL;
  TSS2_RC rc =
      Esys_StartAuthSession(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "StartAuthSession");
  TPM2B_NONCE empty_nonce = {};
  TPM2B_DIGEST empty_digest = {};
  rc = Esys_PolicySecret(esys, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, &empty_nonce, &empty_digest, &empty_nonce, 0, nullptr,
                         nullptr);
  TPM2B_DIGEST* out = nullptr;
  if (rc == TSS2_RC_SUCCESS) {
    rc = Esys_ActivateCredential(esys, ak.handle(), ek.handle(), ESYS_TR_PASSWORD, session,
                                 ESYS_TR_NONE, &id, &secret, &out);
  }
  Esys_FlushContext(esys, session);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "ActivateCredential");
  Bytes got(out->buffer, out->buffer + out->size);
  Esys_Free(out);
  return got;
}

TEST(AkTemplate, MarshalsToTheDocumentedBytes) {
  TPM2B_PUBLIC t = AkTemplate();
  uint8_t buf[sizeof(TPM2B_PUBLIC)];
  size_t off = 0;
  ASSERT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&t, buf, sizeof buf, &off), TSS2_RC_SUCCESS);
  std::span<const uint8_t> doc = AkTemplateBytes();
  ASSERT_EQ(doc.size(), 90u);
  EXPECT_EQ(Bytes(buf, buf + off), Bytes(doc.begin(), doc.end()));
  EXPECT_EQ(t.publicArea.objectAttributes, 0x00050472u);
  EXPECT_FALSE(t.publicArea.objectAttributes & TPMA_OBJECT_DECRYPT);
}

TEST(Credential, KdfaIsSp800108CounterModeAsOpensslComputesIt) {
  const Bytes seed(32, 0x5a), name = {0x00, 0x0b, 1, 2, 3, 4};
  Bytes ours = KdfaSha256(seed, "STORAGE", name, {}, 128);
  ASSERT_EQ(ours.size(), 16u);
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "KBKDF", nullptr);
  ASSERT_NE(kdf, nullptr);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  char mode[] = "counter", mac[] = "HMAC", digest[] = "SHA256";
  const char label[] = "STORAGE";  // OpenSSL adds the 0x00 separator
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, mode, 0),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, mac, 0),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(seed.data()),
                                        seed.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(label),
                                        sizeof label - 1),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(name.data()),
                                        name.size()),
      OSSL_PARAM_construct_end(),
  };
  Bytes theirs(16);
  EXPECT_EQ(EVP_KDF_derive(ctx, theirs.data(), theirs.size(), params), 1);
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  EXPECT_EQ(ours, theirs);
  // Longer than one block: the counter goes on.
  EXPECT_EQ(KdfaSha256(seed, "INTEGRITY", {}, {}, 512).size(), 64u);
}

TEST(Credential, SoftwareMakeCredentialActivatesOnlyForItsName) {
  Tpm tpm;
  ASSERT_TRUE(tpm.esys);
  auto ak = CreateAk(tpm.get());
  ASSERT_TRUE(ak) << ak.error().ToString();
  auto name = ObjectName(ak->public_area());
  ASSERT_TRUE(name);
  auto proved = ProveAkResidency(tpm.get(), *ak, *name);
  EXPECT_TRUE(proved) << proved.error().ToString();

  // A credential made for another key's Name: the TPM refuses (the outer HMAC covers the name).
  Bytes other = *name;
  other.back() ^= 1;
  auto refused = ProveAkResidency(tpm.get(), *ak, other);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("ActivateCredential"), std::string::npos)
      << refused.error().ToString();
}

// An AK and the RSA EK in a fresh simulated TPM, and the AK's name: what a credential is made
// for and activated with.
class CredentialOnTpm : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tpm_.esys);
    auto ak = CreateAk(tpm_.get());
    auto ek = CreateEndorsementPrimary(tpm_.get(), EkTemplate(EkKind::kRsa2048), "EK");
    ASSERT_TRUE(ak && ek);
    auto name = ObjectName(ak->public_area());
    ASSERT_TRUE(name);
    ak_.emplace(std::move(*ak));
    ek_.emplace(std::move(*ek));
    name_ = std::move(*name);
  }

  Tpm tpm_;  // outlives the keys, which flush their handles through it
  std::optional<PrimaryKey> ak_, ek_;
  std::optional<Bytes> name_;
};

TEST_F(CredentialOnTpm, SameShapeAsTheTpmsOwnMakeCredential) {
  const Bytes credential = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

  TPM2B_DIGEST cred = {};
  cred.size = uint16_t(credential.size());
  std::memcpy(cred.buffer, credential.data(), credential.size());
  TPM2B_NAME tpm_name = {};
  tpm_name.size = uint16_t(name_->size());
  std::memcpy(tpm_name.name, name_->data(), name_->size());
  TPM2B_ID_OBJECT* id = nullptr;
  TPM2B_ENCRYPTED_SECRET* secret = nullptr;
  ASSERT_EQ(Esys_MakeCredential(tpm_.get(), ek_->handle(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                &cred, &tpm_name, &id, &secret),
            TSS2_RC_SUCCESS);
  auto mine = MakeCredential(ek_->public_area(), *name_, credential);
  ASSERT_TRUE(mine) << mine.error().ToString();
  EXPECT_EQ(mine->id_object.size(), id->size);
  EXPECT_EQ(mine->encrypted_secret.size(), secret->size);
  // The same prefix: TPM2B_DIGEST size of the outer HMAC.
  EXPECT_EQ(mine->id_object[0], id->credential[0]);
  EXPECT_EQ(mine->id_object[1], id->credential[1]);
  auto from_tpm = Activate(tpm_.get(), *ak_, *ek_, *id, *secret);
  Esys_Free(id);
  Esys_Free(secret);
  ASSERT_TRUE(from_tpm) << from_tpm.error().ToString();
  EXPECT_EQ(*from_tpm, credential);

  TPM2B_ID_OBJECT my_id = {};
  my_id.size = uint16_t(mine->id_object.size());
  std::memcpy(my_id.credential, mine->id_object.data(), my_id.size);
  TPM2B_ENCRYPTED_SECRET my_secret = {};
  my_secret.size = uint16_t(mine->encrypted_secret.size());
  std::memcpy(my_secret.secret, mine->encrypted_secret.data(), my_secret.size);
  auto from_mine = Activate(tpm_.get(), *ak_, *ek_, my_id, my_secret);
  ASSERT_TRUE(from_mine) << from_mine.error().ToString();
  EXPECT_EQ(*from_mine, credential);
  // A flipped bit of the encrypted identity fails the integrity check.
  my_id.credential[40] ^= 1;
  EXPECT_FALSE(Activate(tpm_.get(), *ak_, *ek_, my_id, my_secret));
}

TEST_F(CredentialOnTpm, Tpm2ToolsMakeCredentialActivatesToo) {
  if (std::system("command -v tpm2_makecredential >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "tpm2-tools is not installed";
  }
  TempDir dir;
  TPM2B_PUBLIC ek_pub = {};
  ek_pub.publicArea = ek_->public_area();
  uint8_t buf[sizeof(TPM2B_PUBLIC)];
  size_t off = 0;
  ASSERT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&ek_pub, buf, sizeof buf, &off), TSS2_RC_SUCCESS);
  dir.Write("ek.pub", Bytes(buf, buf + off));
  const Bytes credential(32, 0xc3);
  dir.Write("secret", credential);
  std::string cmd = "tpm2_makecredential --tcti none -u " + dir.File("ek.pub") + " -s " +
                    dir.File("secret") + " -n " + HexBytes(*name_) + " -o " + dir.File("blob") +
                    " > " + dir.File("log") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << dir.ReadText("log");
  // tpm2-tools' file: u32 magic 0xBADCC0DE, u32 version 1, TPM2B_ID_OBJECT,
  // TPM2B_ENCRYPTED_SECRET.
  Bytes blob = dir.Read("blob");
  ASSERT_GT(blob.size(), 8u);
  EXPECT_EQ(Bytes(blob.begin(), blob.begin() + 4), (Bytes{0xba, 0xdc, 0xc0, 0xde}));
  TPM2B_ID_OBJECT id = {};
  TPM2B_ENCRYPTED_SECRET secret = {};
  off = 8;
  ASSERT_EQ(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob.data(), blob.size(), &off, &id),
            TSS2_RC_SUCCESS);
  ASSERT_EQ(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(blob.data(), blob.size(), &off, &secret),
            TSS2_RC_SUCCESS);
  auto mine = MakeCredential(ek_->public_area(), *name_, credential);
  ASSERT_TRUE(mine);
  EXPECT_EQ(id.size, mine->id_object.size());
  EXPECT_EQ(secret.size, mine->encrypted_secret.size());
  auto got = Activate(tpm_.get(), *ak_, *ek_, id, secret);
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(*got, credential);
}

TEST(AkProvision, CertifiedAkVerifiesAndIsTheRecreatedAk) {
  TempDir dir;
  HostCa ca = MustCa(dir);
  Tpm tpm;
  ASSERT_TRUE(tpm.esys);
  EXPECT_EQ(ReadAkCertificate(tpm.get()).error().kind(), ErrorKind::kNotFound);
  auto eks = ProvisionEks(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-ak"});
  ASSERT_TRUE(eks) << eks.error().ToString();
  auto ak = ProvisionAk(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-ak"});
  ASSERT_TRUE(ak) << ak.error().ToString();
  EXPECT_EQ(ak->nv_index, 0x01c101c0u);
  EXPECT_EQ(ak->name.size(), 34u);

  auto der = ReadAkCertificate(tpm.get());
  ASSERT_TRUE(der) << der.error().ToString();
  EXPECT_EQ(*der, ak->cert_der);
  auto again = ReadAkPublic(tpm.get());  // recreated: the same key, the same Name
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->name, ak->name);
  EXPECT_EQ(again->public_area, ak->public_area);
  EXPECT_EQ(again->public_pem, ak->public_pem);
  auto ok = VerifyAkCertificate(*der, *ca.CertPem(), again->public_pem);
  EXPECT_TRUE(ok) << ok.error().ToString();
  // An EK certificate is no AK certificate, and the AK's is not the EK's.
  auto ek_as_ak = VerifyAkCertificate((*eks)[1].cert_der, *ca.CertPem(), (*eks)[1].public_pem);
  ASSERT_FALSE(ek_as_ak);
  EXPECT_NE(ek_as_ak.error().message().find("2.23.133.8.3"), std::string::npos);
  EXPECT_FALSE(VerifyAkCertificate(*der, *ca.CertPem(), (*eks)[1].public_pem));
  TempDir other_dir;
  EXPECT_FALSE(VerifyAkCertificate(*der, *MustCa(other_dir).CertPem(), again->public_pem));

  auto cert = CertFromDer(*der);
  ASSERT_TRUE(cert);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert->get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "vmm vTPM AK vm-ak");
  EXPECT_EQ(X509_get_key_usage(cert->get()), uint32_t(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_check_ca(cert->get()), 0);
  EXPECT_EQ(X509_get_extended_key_usage(cert->get()), 0u);  // only the TCG purpose
  // The same TPM description as the EK certificate's.
  auto ek_cert = CertFromDer((*eks)[0].cert_der);
  ASSERT_TRUE(ek_cert);
  const auto san = [](X509* c) {
    ASN1_OCTET_STRING* d =
        X509_EXTENSION_get_data(X509_get_ext(c, X509_get_ext_by_NID(c, NID_subject_alt_name, -1)));
    return Bytes(d->data, d->data + d->length);
  };
  EXPECT_EQ(san(cert->get()), san(ek_cert->get()));

  // The NV index: as the EK certificates', written and write-locked.
  ESYS_TR nv = ESYS_TR_NONE;
  ASSERT_EQ(Esys_TR_FromTPMPublic(tpm.get(), kAkCertNvIndex, ESYS_TR_NONE, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &nv),
            TSS2_RC_SUCCESS);
  TPM2B_NV_PUBLIC* nvpub = nullptr;
  ASSERT_EQ(
      Esys_NV_ReadPublic(tpm.get(), nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nvpub, nullptr),
      TSS2_RC_SUCCESS);
  EXPECT_EQ(nvpub->nvPublic.attributes & kEkCertNvAttributes, kEkCertNvAttributes);
  EXPECT_TRUE(nvpub->nvPublic.attributes & TPMA_NV_WRITELOCKED);
  Esys_Free(nvpub);
  Esys_TR_Close(tpm.get(), &nv);
}

TEST(AkProvision, SecondProvisionIsRefusedUnlessForced) {
  TempDir dir;
  HostCa ca = MustCa(dir);
  Tpm tpm;
  ASSERT_TRUE(tpm.esys);
  auto first = ProvisionAk(tpm.get(), ca, ProvisionOptions{.vm_id = "a"});
  ASSERT_TRUE(first) << first.error().ToString();
  auto again = ProvisionAk(tpm.get(), ca, ProvisionOptions{.vm_id = "a"});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(again.error().message().find("already provisioned"), std::string::npos);
  auto forced = ProvisionAk(tpm.get(), ca, ProvisionOptions{.vm_id = "a", .force = true});
  ASSERT_TRUE(forced) << forced.error().ToString();
  EXPECT_NE(forced->cert_der, first->cert_der);  // a new serial
  EXPECT_EQ(forced->name, first->name);          // the same key
  EXPECT_EQ(*ReadAkCertificate(tpm.get()), forced->cert_der);
}

}  // namespace
}  // namespace vmm::vtpm
