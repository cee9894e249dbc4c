// attestation/ear.h: the EAR claims of a result, and its ES256 JWT verified here with the
// signer's public key.
#include "attestation/ear.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "tests/unit/attestation/fake_tpm.h"

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers
using Json = nlohmann::json;

Bytes FromBase64Url(std::string s) {
  for (char& c : s) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (s.size() % 4) s += '=';
  Bytes out(s.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  EXPECT_GE(n, 0);
  size_t pad = s.size() >= 2 ? (s[s.size() - 1] == '=') + (s[s.size() - 2] == '=') : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

class EarTest : public ::testing::Test {
 protected:
  EarTest() {
    Evidence e = MakeEvidence(tpm_, ca_, nonce_);
    result_ = Verify(e, VerifyOptions{ca_.pem(), nonce_, nullptr, std::nullopt});
    result_.policy_id = "tenant-policy-1";
  }
  FakeTpm tpm_;
  TestCa ca_{"CA"};
  Bytes nonce_ = Bytes(32, 0xab);
  VerifyResult result_;
};

TEST_F(EarTest, JsonCarriesTheEarClaims) {
  Json doc = Json::parse(EarToJson(result_, nonce_, 1700000000));
  EXPECT_EQ(doc["eat_profile"], "tag:github.com,2023:veraison/ear");
  EXPECT_EQ(doc["iat"], 1700000000);
  EXPECT_EQ(doc["ear.verifier-id"]["developer"], "vmm");
  EXPECT_EQ(doc["eat_nonce"], Base64Url(nonce_));
  const Json& sub = doc["submods"]["vmm-vtpm"];
  EXPECT_EQ(sub["ear.status"], "warning");
  EXPECT_EQ(sub["ear.appraisal-policy-id"], "tenant-policy-1");
  EXPECT_EQ(sub["ear.trustworthiness-vector"]["instance-identity"], 2);
  EXPECT_EQ(sub["ear.trustworthiness-vector"]["executables"], 3);
  EXPECT_FALSE(sub["ear.trustworthiness-vector"].contains("runtime-opaque"));
  EXPECT_EQ(sub["vmm.checks"].size(), result_.checks.size());
  EXPECT_EQ(sub["vmm.checks"][8]["name"], "quote-signature");
  EXPECT_EQ(sub["vmm.checks"][8]["status"], "pass");
  EXPECT_EQ(sub["vmm.quote"]["reset_count"], 2);
  EXPECT_EQ(sub["vmm.quote"]["restart_count"], 1);
  EXPECT_EQ(sub["vmm.vm-id"], "vm-1");
}

TEST_F(EarTest, ShortNoncesAreLeftOutOfEatNonce) {
  Json doc = Json::parse(EarToJson(result_, Bytes(4, 1), 1));
  EXPECT_FALSE(doc.contains("eat_nonce"));
}

TEST_F(EarTest, JwtIsSignedEs256WithRawRS) {
  EvpPkeyPtr key = NewP256();
  auto jwt = EarToJwt(result_, nonce_, 1700000000, PemOf(key.get(), true));
  ASSERT_TRUE(jwt.has_value()) << jwt.error().message();
  size_t dot1 = jwt->find('.'), dot2 = jwt->rfind('.');
  ASSERT_NE(dot1, dot2);
  Bytes header = FromBase64Url(jwt->substr(0, dot1));
  EXPECT_EQ(Json::parse(header), Json::parse(R"({"alg":"ES256","typ":"JWT"})"));
  Bytes payload = FromBase64Url(jwt->substr(dot1 + 1, dot2 - dot1 - 1));
  EXPECT_EQ(Json::parse(payload)["submods"]["vmm-vtpm"]["ear.status"], "warning");
  Bytes sig = FromBase64Url(jwt->substr(dot2 + 1));
  ASSERT_EQ(sig.size(), 64u);
  ECDSA_SIG* s = ECDSA_SIG_new();
  ECDSA_SIG_set0(s, BN_bin2bn(sig.data(), 32, nullptr), BN_bin2bn(sig.data() + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(s, &der);
  ECDSA_SIG_free(s);
  std::string input = jwt->substr(0, dot2);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.get()), 1);
  EXPECT_EQ(EVP_DigestVerify(ctx, der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  input[0] ^= 1;
  EXPECT_NE(EVP_DigestVerify(ctx, der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
}

TEST_F(EarTest, JwtNeedsAP256Key) {
  EvpPkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  auto jwt = EarToJwt(result_, nonce_, 1, PemOf(rsa.get(), true));
  ASSERT_FALSE(jwt.has_value());
  EXPECT_NE(jwt.error().message().find("P-256"), std::string::npos);
  EXPECT_FALSE(EarToJwt(result_, nonce_, 1, "not a key").has_value());
}

}  // namespace
}  // namespace vmm::attestation
