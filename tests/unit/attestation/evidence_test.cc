// attestation/evidence.h: the bundle round-trips, and the strict reader refuses every malformed
// document with a message naming the key at fault.
#include "attestation/evidence.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/strict_json.h"
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
  // The bundle with the value at `pointer` (RFC 6901) set to `value` is refused with `message`.
  void ExpectErrorWith(const std::string& pointer, const Json& value, std::string_view message) {
    Json doc = Doc();
    doc[Json::json_pointer(pointer)] = value;
    ExpectError(doc, message);
  }
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
  ExpectErrorWith("/format", "vmm-evidence/2", "is not vmm-evidence/1");
  ExpectErrorWith("/source", "host", "source \"host\"");
  ExpectErrorWith("/ca_chain", "x", "ca_chain: not an array");
  ExpectErrorWith("/ak/certificate", "hello", "ak.certificate: not a PEM certificate");
}

TEST_F(EvidenceTest, RefusesBadBase64) {
  for (const char* bad : {"QUJD\n", "QUJ", "QU=D", "QUJ=", "QUJD QUJD", "Q\x01JD"}) {
    Json doc = Doc();
    doc["quote"]["attest"] = bad;
    ExpectError(doc, "quote.attest");
  }
}

TEST_F(EvidenceTest, RefusesBadHexAndPcrKeys) {
  ExpectErrorWith("/nonce", "ABCD", "nonce: not lowercase hex");
  ExpectErrorWith("/nonce", "abc", "odd number");
  for (const char* key : {"01", "24", "x", "-1", ""}) {
    ExpectErrorWith("/pcrs/sha256/" + std::string(key), std::string(64, '0'), "is not a PCR index");
  }
  ExpectErrorWith("/pcrs/sha256/0", std::string(62, '0'), "pcrs.sha256.0: 31 bytes");
  ExpectErrorWith("/pcrs/sha256/0", std::string(64, 'g'), "pcrs.sha256.0: not lowercase hex");
  ExpectErrorWith("/pcrs/sha256/0", 7, "pcrs.sha256.0: not a string");
  ExpectErrorWith("/pcrs/md5", Json::object(), "unknown bank \"md5\"");
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

// The reader refuses, as malformed JSON, too deep or with a repeated key, exactly the documents
// base/strict_json.h (nlohmann, which the reader replaced) refuses, with the same key.
TEST(EvidenceJson, RefusesWhatTheStrictNlohmannReaderRefuses) {
  const std::string_view kDocs[] = {
      "",
      "   ",
      "{}",
      "\xEF\xBB\xBF{}",
      "{} x",
      std::string_view("{\"a\":\"\0\"}", 8),
      "{\"a\":\"\\u0000\"}",
      " {\"a\" : 1 , \"b\":[ ] }\r\n\t",
      "{\"a\":\"\\udc00\"}",
      "{\"a\":\"\\ud800\"}",
      "{\"a\":\"\\ud800x\"}",
      "{\"a\":\"\\ud83d\\ude00\"}",
      "{\"a\":\"\xC0\x80\"}",
      "{\"a\":\"\xED\xA0\x80\"}",
      "{\"\xF4\x90\x80\x80\":1}",
      "{\"a\":\"\xE2\x82\xAC\"}",
      "{\"a\":\"tab\tin\"}",
      "[\"\\x\"]",
      "[[[[[[[[[]]]]]]]]]",
      "[[[[[[[[[1]]]]]]]]]",
      "[[[[[[[[{}]]]]]]]]",
      "[[[[[[[[{\"a\":1}]]]]]]]]",
      "[[[[[[[[[[",
      "[1,,[[[[[[[[[[[",
      "{\"a\":1,\"a\":2}",
      "{\"a\":{\"x\":1,\"x\":2},\"b\":1,\"b\":2}",
      "{\"b\":1,\"a\":{\"x\":1},\"b\":2,\"a\":3}",
      "[{\"k\":1},{\"k\":1,\"j\":[{\"z\":0,\"z\":1}],\"k\":2}]",
      "{\"a\":1,\"a\":2",
      "{\"a\":1,\"a\":[[[[[[[[[1]]]]]]]]]}",
      "{\"s\\u0061\":1,\"sa\":2}",
      "[1,2",
      "[1,]",
      "01",
      "-",
      "[.5]",
      "[1.]",
      "[1e400]",
      "[-1e-400]",
      "[1.8e308]",
      "[2e308]",
      "[123456789012345678901234567890]",
      "tru",
      "nul",
      "\"\\u00e9\"",
  };
  for (std::string_view doc : kDocs) {
    SCOPED_TRACE(testing::PrintToString(std::string(doc)));
    StrictJson want = ParseStrictJson(doc, 8);
    Result<Evidence> got = ParseEvidence(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(doc.data()), doc.size()));
    ASSERT_FALSE(got.has_value());
    const std::string message = got.error().message();
    switch (want.problem) {
      case StrictJson::Problem::kInvalid:
        EXPECT_THAT(message, HasSubstr("not valid JSON"));
        break;
      case StrictJson::Problem::kTooDeep:
        EXPECT_THAT(message, HasSubstr("nested deeper than 8 levels"));
        break;
      case StrictJson::Problem::kRepeatedKey:
        EXPECT_THAT(message, HasSubstr("the key \"" + want.repeated_key + "\" is repeated"));
        break;
      case StrictJson::Problem::kNone:
        EXPECT_THAT(message, ::testing::Not(HasSubstr("JSON")));
        EXPECT_THAT(message, ::testing::Not(HasSubstr("nested")));
        EXPECT_THAT(message, ::testing::Not(HasSubstr("repeated")));
        break;
    }
  }
  // Stricter in one place: nlohmann ends its input at a NUL byte, so it ignored anything after
  // one that follows the document; the reader refuses that as trailing bytes.
  const std::string_view nul_tail("{}\0x", 4);
  EXPECT_EQ(ParseStrictJson(nul_tail, 8).problem, StrictJson::Problem::kNone);
  EXPECT_THAT(ParseEvidence(std::span<const uint8_t>(
                                reinterpret_cast<const uint8_t*>(nul_tail.data()), nul_tail.size()))
                  .error()
                  .message(),
              HasSubstr("not valid JSON"));
}

TEST_F(EvidenceTest, ReportsTheFirstUnknownKeyByNameAndAcceptsAByteOrderMark) {
  Json doc = Doc();
  doc["zz"] = 1;
  doc["aa"] = 2;
  ExpectError(doc, "unknown key \"aa\"");
  auto back = Parse("\xEF\xBB\xBF" + SerializeEvidence(evidence_));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  ExpectSameContent(*back, evidence_);
}

}  // namespace
}  // namespace vmm::attestation
