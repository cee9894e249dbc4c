// attestation/quote.h: VerifyQuoteSignature with every hash an AK may sign with, with an RSA AK,
// with r and s as a TPM may marshal them, and with or without the AK's prepared context.
#include "attestation/quote.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/attestation/fake_tpm.h"

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers
using ::testing::HasSubstr;

Bytes Marshal(const TPMT_SIGNATURE& t) {
  uint8_t buf[sizeof(TPMT_SIGNATURE)];
  size_t off = 0;
  Require(Tss2_MU_TPMT_SIGNATURE_Marshal(&t, buf, sizeof(buf), &off) == TSS2_RC_SUCCESS,
          "marshal TPMT_SIGNATURE");
  return Bytes(buf, buf + off);
}

TPMT_SIGNATURE Unmarshal(const Bytes& bytes) {
  TPMT_SIGNATURE t{};
  size_t off = 0;
  Require(Tss2_MU_TPMT_SIGNATURE_Unmarshal(bytes.data(), bytes.size(), &off, &t) == TSS2_RC_SUCCESS,
          "unmarshal TPMT_SIGNATURE");
  return t;
}

// The same check with the AK's prepared context and with one made for the call.
void ExpectVerifies(const AkPublic& ak, const Bytes& attest, const Bytes& sig, bool want) {
  AkPublic unprepared{ak.type, ak.name_alg, ak.attributes, ak.name, {}, {}};
  unprepared.key.reset(ak.key.get());
  EVP_PKEY_up_ref(ak.key.get());
  for (const AkPublic* k : {&ak, static_cast<const AkPublic*>(&unprepared)}) {
    auto r = VerifyQuoteSignature(*k, attest, sig);
    EXPECT_EQ(r.has_value(), want) << (k == &ak ? "prepared" : "unprepared");
    if (!want && !r) {
      EXPECT_THAT(r.error().message(), HasSubstr("does not verify"));
    }
  }
}

TEST(QuoteSignature, EcdsaWithEveryAllowedHashAndTamperedAttest) {
  FakeTpm tpm;
  auto ak = ParseAkPublic(tpm.public_area());
  ASSERT_TRUE(ak.has_value()) << ak.error().message();
  const Bytes attest = tpm.Attest({}, Bytes(16, 1));
  for (uint16_t hash : {TPM2_ALG_SHA256, TPM2_ALG_SHA384, TPM2_ALG_SHA512}) {
    const Bytes sig = tpm.Sign(attest, hash);
    ExpectVerifies(*ak, attest, sig, true);
    Bytes tampered = attest;
    tampered.back() ^= 1;
    ExpectVerifies(*ak, tampered, sig, false);
  }
}

TEST(QuoteSignature, EcdsaIntegersWithLeadingZerosVerifyAndWideOnesDoNot) {
  FakeTpm tpm;
  auto ak = ParseAkPublic(tpm.public_area());
  ASSERT_TRUE(ak.has_value());
  const Bytes attest = tpm.Attest({}, Bytes(16, 2));
  TPMT_SIGNATURE t = Unmarshal(tpm.Sign(attest));
  // Eight zero bytes before r: the same integer.
  TPMS_SIGNATURE_ECC& ecc = t.signature.ecdsa;
  std::memmove(ecc.signatureR.buffer + 8, ecc.signatureR.buffer, ecc.signatureR.size);
  std::memset(ecc.signatureR.buffer, 0, 8);
  ecc.signatureR.size = static_cast<uint16_t>(ecc.signatureR.size + 8);
  ExpectVerifies(*ak, attest, Marshal(t), true);
  // A non-zero byte before r: a 33-byte integer, beyond the group order.
  ecc.signatureR.buffer[7] = 1;
  ExpectVerifies(*ak, attest, Marshal(t), false);
  // r = 0.
  ecc.signatureR.size = 0;
  ExpectVerifies(*ak, attest, Marshal(t), false);
}

TEST(QuoteSignature, Rsa2048Pkcs1) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  ASSERT_TRUE(key);
  TPMT_PUBLIC pub{};
  pub.type = TPM2_ALG_RSA;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
                         TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_USERWITHAUTH;
  pub.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
  pub.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
  pub.parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
  pub.parameters.rsaDetail.keyBits = 2048;
  BIGNUM* n = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
  pub.unique.rsa.size = 256;
  BN_bn2binpad(n, pub.unique.rsa.buffer, 256);
  BN_free(n);
  uint8_t buf[sizeof(TPMT_PUBLIC)];
  size_t off = 0;
  ASSERT_EQ(Tss2_MU_TPMT_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
  auto ak = ParseAkPublic(std::span<const uint8_t>(buf, off));
  ASSERT_TRUE(ak.has_value()) << ak.error().message();

  const Bytes attest = FakeTpm().Attest({}, Bytes(16, 3));
  for (uint16_t hash : {TPM2_ALG_SHA256, TPM2_ALG_SHA384}) {
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    size_t len = 0;
    ASSERT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, MdOf(hash), nullptr, key.get()), 1);
    ASSERT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, attest.data(), attest.size()), 1);
    TPMT_SIGNATURE t{};
    t.sigAlg = TPM2_ALG_RSASSA;
    t.signature.rsassa.hash = hash;
    ASSERT_EQ(EVP_DigestSign(ctx.get(), t.signature.rsassa.sig.buffer, &len, attest.data(),
                             attest.size()),
              1);
    t.signature.rsassa.sig.size = static_cast<uint16_t>(len);
    ExpectVerifies(*ak, attest, Marshal(t), true);
    // The same signature claimed for another hash: the DigestInfo differs.
    t.signature.rsassa.hash = hash == TPM2_ALG_SHA256 ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256;
    ExpectVerifies(*ak, attest, Marshal(t), false);
  }
}

}  // namespace
}  // namespace vmm::attestation
