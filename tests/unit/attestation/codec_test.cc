// attestation/codec.h: canonical base64 and lowercase hex both ways, and the UTF-8 check the
// evidence and policy readers share.
#include "attestation/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <openssl/evp.h>

namespace vmm::attestation {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Counting(size_t n) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(0xf7 * i + 3);
  return bytes;
}

// OpenSSL's encoder as the reference for the text.
std::string OpenSslBase64(const std::vector<uint8_t>& bytes) {
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

TEST(Codec, Base64RoundTripsEveryTailLengthAsOpenSslWritesIt) {
  for (size_t n = 0; n < 70; ++n) {
    const std::vector<uint8_t> bytes = Counting(n);
    const std::string text = EncodeBase64(bytes);
    EXPECT_EQ(text, OpenSslBase64(bytes)) << n;
    auto back = DecodeBase64Strict(text, n);
    ASSERT_TRUE(back.has_value()) << n << ": " << back.error().message();
    EXPECT_EQ(*back, bytes) << n;
  }
}

TEST(Codec, Base64RefusesAllButTheCanonicalText) {
  const struct {
    const char* text;
    const char* why;
  } kBad[] = {
      {"QUJD\n", "multiple of 4"}, {"QUJ", "multiple of 4"},  {"QU=D", "not base64"},
      {"QUJ=", "not canonical"},   {"QR==", "not canonical"}, {"QUJD QUJD", "multiple of 4"},
      {"Q\x01JD", "not base64"},   {"Q===", "not base64"},    {"====", "not base64"},
      {"QUJD====", "not base64"},  {"QU-_", "not base64"},    {"QUJDQUJ=QUJD", "not base64"},
  };
  for (const auto& bad : kBad) {
    auto r = DecodeBase64Strict(bad.text, 100);
    ASSERT_FALSE(r.has_value()) << bad.text;
    EXPECT_THAT(r.error().message(), HasSubstr(bad.why)) << bad.text;
  }
  EXPECT_THAT(DecodeBase64Strict("QUJDRA==", 3).error().message(), HasSubstr("more than 3"));
  EXPECT_TRUE(DecodeBase64Strict("QUJDRA==", 4).has_value());
}

TEST(Codec, LowerHexOnly) {
  EXPECT_EQ(*DecodeLowerHex("00ff7a"), (std::vector<uint8_t>{0x00, 0xff, 0x7a}));
  EXPECT_TRUE(DecodeLowerHex("")->empty());
  EXPECT_THAT(DecodeLowerHex("abc").error().message(), HasSubstr("odd number"));
  for (const char* bad : {"AB", "0g", " 0", "0x"}) {
    EXPECT_THAT(DecodeLowerHex(bad).error().message(), HasSubstr("not lowercase hex")) << bad;
  }
}

TEST(Codec, Utf8RefusesOverlongSurrogateAndOutOfRangeForms) {
  for (std::string_view good :
       {"", "plain ascii, longer than eight bytes", "\xC2\xA9", "\xE2\x82\xAC", "\xED\x9F\xBF",
        "\xEF\xBF\xBF", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF", "0123456\xC3\xA9 and more ascii"}) {
    EXPECT_TRUE(ValidUtf8(good)) << good;
  }
  for (std::string_view bad :
       {"\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x9F\xBF", "\xED\xA0\x80", "\xED\xBF\xBF",
        "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\xE2\x82",
        "0123456789abcde\xE2\x82", "\xC3(", "\xE2\x28\xA1"}) {
    EXPECT_FALSE(ValidUtf8(bad)) << testing::PrintToString(std::string(bad));
  }
}

}  // namespace
}  // namespace vmm::attestation
