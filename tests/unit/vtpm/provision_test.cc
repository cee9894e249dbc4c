// EK provisioning against libtpms in a forked child (ForkEnginePeer), with the host vTPM
// CA in a temp directory. The test process itself never initialises libtpms.
#include "vtpm/provision/ek_provision.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/unit/common/temp_dir.h"
#include "tests/unit/vtpm/forked_tpm.h"
#include "vtpm/provision/ek_cert.h"
#include "vtpm/provision/host_ca.h"

namespace vmm::vtpm {
namespace {

using testing_util::TempDir;

std::string CertPubPem(const std::vector<uint8_t>& der) {
  auto cert = CertFromDer(der);
  EXPECT_TRUE(cert);
  auto pem = PublicKeyToPem(X509_get0_pubkey(cert->get()));
  EXPECT_TRUE(pem);
  return *pem;
}

// What most provisioning tests start from: a host CA in a fresh directory, and a TPM.
struct CaAndTpm {
  TempDir dir;
  HostCa ca = MustCa(dir);
  Tpm tpm;
};

TEST(HostCa, CreatedOnceThenLoaded) {
  TempDir dir;
  HostCa first = MustCa(dir);
  HostCa second = MustCa(dir);
  EXPECT_EQ(*first.CertPem(), *second.CertPem());
  struct stat st;
  ASSERT_EQ(stat(dir.File(kHostCaKeyFile).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  X509* cert = first.cert();
  EXPECT_EQ(X509_check_ca(cert), 1);
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  EXPECT_EQ(X509_get_key_usage(cert), uint32_t(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  EXPECT_EQ(std::string(cn).rfind("vmm vTPM CA ", 0), 0u) << cn;
  EXPECT_EQ(EVP_PKEY_get_base_id(first.key()), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(first.key()), 256);
  // No temp files left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 2);
}

TEST(HostCa, KeyReadableByOthersIsRefused) {
  TempDir dir;
  MustCa(dir);
  ASSERT_EQ(chmod(dir.File(kHostCaKeyFile).c_str(), 0644), 0);
  auto ca = EnsureHostCa(dir.path());
  ASSERT_FALSE(ca);
  EXPECT_NE(ca.error().message().find("mode 0644"), std::string::npos) << ca.error().ToString();
}

TEST(HostCa, CertificateOfAnotherKeyIsRefused) {
  TempDir a, b;
  MustCa(a);
  MustCa(b);
  a.WriteText(kHostCaCertFile, b.ReadText(kHostCaCertFile));
  auto ca = EnsureHostCa(a.path());
  ASSERT_FALSE(ca);
  EXPECT_NE(ca.error().message().find("does not belong"), std::string::npos)
      << ca.error().ToString();
}

TEST(HostCa, KeyWithoutCertificateIsRefusedNotReplaced) {
  TempDir dir;
  MustCa(dir);
  std::string key = dir.ReadText(kHostCaKeyFile);
  std::filesystem::remove(dir.File(kHostCaCertFile));
  auto ca = EnsureHostCa(dir.path());
  ASSERT_FALSE(ca);
  EXPECT_NE(ca.error().message().find("incomplete"), std::string::npos) << ca.error().ToString();
  EXPECT_EQ(dir.ReadText(kHostCaKeyFile), key);
}

TEST(EkTemplate, MatchesTcgLowRangeTemplates) {
  TPM2B_PUBLIC rsa = EkTemplate(EkKind::kRsa2048);
  EXPECT_EQ(rsa.publicArea.objectAttributes, 0x000300b2u);
  EXPECT_EQ(rsa.publicArea.unique.rsa.size, 256);
  EXPECT_EQ(rsa.publicArea.parameters.rsaDetail.symmetric.mode.aes, TPM2_ALG_CFB);
  TPM2B_PUBLIC ecc = EkTemplate(EkKind::kEccP256);
  EXPECT_EQ(ecc.publicArea.objectAttributes, 0x000300b2u);
  EXPECT_EQ(ecc.publicArea.unique.ecc.x.size, 32);
  EXPECT_EQ(ecc.publicArea.parameters.eccDetail.curveID, TPM2_ECC_NIST_P256);
  EXPECT_EQ(ecc.publicArea.authPolicy.size, 32);
}

TEST(EkProvision, ProvisionThenReadBackAndVerify) {
  TempDir dir;
  HostCa ca = MustCa(dir);
  std::string ca_pem = *ca.CertPem();
  Tpm tpm;
  ASSERT_TRUE(tpm.esys);
  auto eks = ProvisionEks(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-test-1"});
  ASSERT_TRUE(eks) << eks.error().ToString();
  ASSERT_EQ(eks->size(), 2u);
  for (const ProvisionedEk& ek : *eks) {
    SCOPED_TRACE(EkKindName(ek.kind));
    auto der = ReadEkCertificate(tpm.get(), ek.kind);
    ASSERT_TRUE(der) << der.error().ToString();
    EXPECT_EQ(*der, ek.cert_der);
    auto pub = ReadEkPublic(tpm.get(), ek.kind);
    ASSERT_TRUE(pub) << pub.error().ToString();
    EXPECT_EQ(*pub, ek.public_pem);
    EXPECT_EQ(CertPubPem(*der), *pub);
    auto ok = VerifyEkCertificate(*der, ca_pem, *pub);
    EXPECT_TRUE(ok) << ok.error().ToString();

    auto cert = CertFromDer(*der);
    ASSERT_TRUE(cert);
    EXPECT_EQ(X509_check_ca(cert->get()), 0);
    EXPECT_EQ(X509_get_key_usage(cert->get()), ek.kind == EkKind::kRsa2048
                                                   ? uint32_t(KU_KEY_ENCIPHERMENT)
                                                   : uint32_t(KU_KEY_AGREEMENT));
    EXPECT_GE(X509_get_ext_by_NID(cert->get(), NID_subject_alt_name, -1), 0);
    EXPECT_GE(X509_get_ext_by_NID(cert->get(), NID_authority_key_identifier, -1), 0);

    // The index as a platform manufacturer leaves it: written, write-locked, readable.
    ESYS_TR nv = ESYS_TR_NONE;
    ASSERT_EQ(Esys_TR_FromTPMPublic(tpm.get(), ek.nv_index, ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &nv),
              TSS2_RC_SUCCESS);
    TPM2B_NV_PUBLIC* nvpub = nullptr;
    ASSERT_EQ(Esys_NV_ReadPublic(tpm.get(), nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nvpub,
                                 nullptr),
              TSS2_RC_SUCCESS);
    TPMA_NV attrs = nvpub->nvPublic.attributes;
    Esys_Free(nvpub);
    EXPECT_EQ(attrs & kEkCertNvAttributes, kEkCertNvAttributes);
    EXPECT_TRUE(attrs & TPMA_NV_WRITTEN);
    EXPECT_TRUE(attrs & TPMA_NV_WRITELOCKED);
    TPM2B_MAX_NV_BUFFER junk = {};
    junk.size = 4;
    EXPECT_NE(Esys_NV_Write(tpm.get(), ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                            ESYS_TR_NONE, &junk, 0),
              TSS2_RC_SUCCESS);
    Esys_TR_Close(tpm.get(), &nv);
  }
}

TEST(EkProvision, OpensslCliVerifiesTheCertificate) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "the openssl CLI is not installed";
  }
  CaAndTpm env;
  auto& [dir, ca, tpm] = env;
  ASSERT_TRUE(tpm.esys);
  auto eks = ProvisionEks(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-cli"});
  ASSERT_TRUE(eks) << eks.error().ToString();
  for (const ProvisionedEk& ek : *eks) {
    auto der = ReadEkCertificate(tpm.get(), ek.kind);
    ASSERT_TRUE(der);
    auto cert = CertFromDer(*der);
    ASSERT_TRUE(cert);
    dir.WriteText("ek.pem", *CertToPem(cert->get()));
    std::string cmd = "openssl verify -x509_strict -CAfile " + dir.File(kHostCaCertFile) + " " +
                      dir.File("ek.pem") + " > " + dir.File("out.txt") + " 2>&1";
    int rc = std::system(cmd.c_str());
    EXPECT_EQ(rc, 0) << EkKindName(ek.kind) << ": " << dir.ReadText("out.txt");
  }
}

TEST(EkProvision, SecondProvisionIsRefusedUnlessForced) {
  CaAndTpm env;
  auto& [dir, ca, tpm] = env;
  ASSERT_TRUE(tpm.esys);
  auto first = ProvisionEks(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-1"});
  ASSERT_TRUE(first) << first.error().ToString();
  auto again = ProvisionEks(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-1"});
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message().find("already provisioned"), std::string::npos)
      << again.error().ToString();
  auto unchanged = ReadEkCertificate(tpm.get(), EkKind::kRsa2048);
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(*unchanged, (*first)[0].cert_der);

  auto forced = ProvisionEks(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-1", .force = true});
  ASSERT_TRUE(forced) << forced.error().ToString();
  auto replaced = ReadEkCertificate(tpm.get(), EkKind::kRsa2048);
  ASSERT_TRUE(replaced);
  EXPECT_NE(*replaced, (*first)[0].cert_der);  // a new serial
  EXPECT_TRUE(VerifyEkCertificate(*replaced, *ca.CertPem(), (*forced)[0].public_pem));
}

TEST(EkProvision, EmptyVmIdGivesEmptySubjectAndCriticalSan) {
  CaAndTpm env;
  auto& [dir, ca, tpm] = env;
  ASSERT_TRUE(tpm.esys);
  auto eks = ProvisionEks(tpm.get(), ca, ProvisionOptions{.kinds = {EkKind::kEccP256}});
  ASSERT_TRUE(eks) << eks.error().ToString();
  ASSERT_EQ(eks->size(), 1u);
  auto cert = CertFromDer((*eks)[0].cert_der);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(cert->get())), 0);
  int san = X509_get_ext_by_NID(cert->get(), NID_subject_alt_name, -1);
  ASSERT_GE(san, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(cert->get(), san)), 1);
  auto ok = VerifyEkCertificate((*eks)[0].cert_der, *ca.CertPem(), (*eks)[0].public_pem);
  EXPECT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ReadEkCertificate(tpm.get(), EkKind::kRsa2048).error().kind(), ErrorKind::kNotFound);
}

TEST(EkProvision, UnprovisionedTpmHasNoCertificate) {
  Tpm tpm;
  ASSERT_TRUE(tpm.esys);
  auto der = ReadEkCertificate(tpm.get(), EkKind::kEccP256);
  ASSERT_FALSE(der);
  EXPECT_EQ(der.error().kind(), ErrorKind::kNotFound);
}

TEST(EkProvision, CertificateFromAnotherCaOrForAnotherKeyFailsVerification) {
  TempDir dir, other_dir;
  HostCa ca = MustCa(dir);
  HostCa other = MustCa(other_dir);
  Tpm tpm;
  ASSERT_TRUE(tpm.esys);
  auto eks = ProvisionEks(tpm.get(), ca, ProvisionOptions{.vm_id = "vm-2"});
  ASSERT_TRUE(eks) << eks.error().ToString();
  const ProvisionedEk& rsa = (*eks)[0];
  const ProvisionedEk& ecc = (*eks)[1];

  auto wrong_ca = VerifyEkCertificate(rsa.cert_der, *other.CertPem(), rsa.public_pem);
  ASSERT_FALSE(wrong_ca);
  EXPECT_NE(wrong_ca.error().message().find("does not verify"), std::string::npos)
      << wrong_ca.error().ToString();

  auto wrong_key = VerifyEkCertificate(rsa.cert_der, *ca.CertPem(), ecc.public_pem);
  ASSERT_FALSE(wrong_key);
  EXPECT_NE(wrong_key.error().message().find("not the TPM's endorsement key"), std::string::npos)
      << wrong_key.error().ToString();

  // A certificate the other CA issued for this very EK does not verify against ours.
  auto identity = ReadTpmIdentity(tpm.get());
  ASSERT_TRUE(identity);
  auto key = PublicKeyFromPem(ecc.public_pem);
  ASSERT_TRUE(key);
  auto forged = IssueEkCertificate(other, key->get(), EkKind::kEccP256, *identity, "vm-2");
  ASSERT_TRUE(forged);
  EXPECT_FALSE(VerifyEkCertificate(*forged, *ca.CertPem(), ecc.public_pem));
  EXPECT_TRUE(VerifyEkCertificate(*forged, *other.CertPem(), ecc.public_pem));
}

}  // namespace
}  // namespace vmm::vtpm
