// attestation/evidence.h: the bundle round-trips, and the strict reader refuses every malformed
// document with a message naming the key at fault.
#include "attestation/evidence.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/unit/attestation/expect_evidence.h"
#include "tests/unit/attestation/fake_tpm.h"

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers
using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

Result<Evidence> Parse(const std::string& text) {
  return ParseEvidence(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

class EvidenceTest : public ::testing::Test {
 protected:
  EvidenceTest() : evidence_(MakeEvidence(tpm_, ca_, Bytes(16, 7))) {}
  Json Doc() const { return Json::parse(SerializeEvidence(evidence_)); }
  void ExpectError(const Json& doc, std::string_view message) {
    auto r = Parse(doc.dump());
    ASSERT_FALSE(r.has_value()) << doc.dump();
    EXPECT_THAT(r.error().message(), HasSubstr(std::string(message)));
  }

  FakeTpm tpm_;
  TestCa ca_{"CA"};
  Evidence evidence_;
};

TEST_F(EvidenceTest, RoundTrips) {
  evidence_.source = EvidenceSource::kGuest;
  std::string text = SerializeEvidence(evidence_);
  EXPECT_EQ(text.back(), '\n');
  auto back = Parse(text);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->source, EvidenceSource::kGuest);
  ExpectSameContent(*back, evidence_);
  EXPECT_EQ(SerializeEvidence(*back), text);
}

TEST_F(EvidenceTest, KeysAreInTheDocumentedOrder) {
  std::vector<std::string> keys;
  Json doc = Doc();
  for (auto& [k, v] : doc.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"format", "source", "nonce", "quote", "pcrs",
                                            "event_log", "ak", "ek", "ca_chain"}));
}

TEST_F(EvidenceTest, RefusesUnknownMissingAndRepeatedKeys) {
  Json doc = Doc();
  doc["extra"] = 1;
  ExpectError(doc, "unknown key \"extra\"");
  doc = Doc();
  doc["quote"].erase("signature");
  ExpectError(doc, "quote: missing key \"signature\"");
  std::string text = SerializeEvidence(evidence_);
  text.insert(1, "\"source\": \"guest\",");
  auto r = Parse(text);
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("\"source\" is repeated"));
}

TEST_F(EvidenceTest, RefusesWrongFormatSourceAndTypes) {
  Json doc = Doc();
  doc["format"] = "vmm-evidence/2";
  ExpectError(doc, "is not vmm-evidence/1");
  doc = Doc();
  doc["source"] = "host";
  ExpectError(doc, "source \"host\"");
  doc = Doc();
  doc["ca_chain"] = "x";
  ExpectError(doc, "ca_chain: not an array");
  doc = Doc();
  doc["ak"]["certificate"] = "hello";
  ExpectError(doc, "ak.certificate: not a PEM certificate");
}

TEST_F(EvidenceTest, RefusesBadBase64) {
  for (const char* bad : {"QUJD\n", "QUJ", "QU=D", "QUJ=", "QUJD QUJD", "Q\x01JD"}) {
    Json doc = Doc();
    doc["quote"]["attest"] = bad;
    ExpectError(doc, "quote.attest");
  }
}

TEST_F(EvidenceTest, RefusesBadHexAndPcrKeys) {
  Json doc = Doc();
  doc["nonce"] = "ABCD";
  ExpectError(doc, "nonce: not lowercase hex");
  doc = Doc();
  doc["nonce"] = "abc";
  ExpectError(doc, "odd number");
  for (const char* key : {"01", "24", "x", "-1", ""}) {
    doc = Doc();
    doc["pcrs"]["sha256"][key] = std::string(64, '0');
    ExpectError(doc, "is not a PCR index");
  }
  doc = Doc();
  doc["pcrs"]["sha256"]["0"] = std::string(62, '0');
  ExpectError(doc, "pcrs.sha256.0: 31 bytes");
  doc = Doc();
  doc["pcrs"]["md5"] = Json::object();
  ExpectError(doc, "unknown bank \"md5\"");
}

TEST_F(EvidenceTest, RefusesTooManyChainCertificatesOversizeAndDeepNesting) {
  Json doc = Doc();
  for (size_t i = 0; i < kMaxCaChain; ++i) doc["ca_chain"].push_back(ca_.pem());
  ExpectError(doc, "more than 8 certificates");
  std::string big(kMaxEvidenceBytes + 1, ' ');
  EXPECT_THAT(Parse(big).error().message(), HasSubstr("allowed"));
  std::string deep(100, '[');
  EXPECT_THAT(Parse(deep).error().message(), HasSubstr("nested deeper"));
  EXPECT_THAT(Parse("").error().message(), HasSubstr("not valid JSON"));
}

}  // namespace
}  // namespace vmm::attestation
