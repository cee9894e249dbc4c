#include "base/hex.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace vmm {
namespace {

TEST(Hex, SmallestDigitsByDefault) {
  EXPECT_EQ(Hex(0), "0x0");
  EXPECT_EQ(Hex(0x1f), "0x1f");
  EXPECT_EQ(Hex(0xFED40000), "0xfed40000");
  EXPECT_EQ(Hex(UINT64_MAX), "0xffffffffffffffff");
}

TEST(Hex, PadsToMinimumDigits) {
  EXPECT_EQ(Hex(0x1c00002, 8), "0x01c00002");
  EXPECT_EQ(Hex(0, 8), "0x00000000");
  EXPECT_EQ(Hex(0x123456789, 8), "0x123456789");  // never truncates
}

TEST(HexBytes, TwoLowercaseDigitsPerByte) {
  const std::vector<uint8_t> bytes = {0x00, 0xff, 0x10, 0xAB};
  EXPECT_EQ(HexBytes(bytes), "00ff10ab");
  EXPECT_EQ(HexBytes({}), "");
}

TEST(ParseHexBytes, EitherCaseRoundTripsAndRefusesBadText) {
  EXPECT_EQ(ParseHexBytes("00FF10ab"), (std::vector<uint8_t>{0x00, 0xff, 0x10, 0xab}));
  EXPECT_EQ(ParseHexBytes(""), std::vector<uint8_t>{});
  const std::vector<uint8_t> bytes = {1, 2, 0xfe};
  EXPECT_EQ(ParseHexBytes(HexBytes(bytes)), bytes);
  EXPECT_EQ(ParseHexBytes("abc"), std::nullopt);   // odd length
  EXPECT_EQ(ParseHexBytes("0g"), std::nullopt);    // not a digit
  EXPECT_EQ(ParseHexBytes("0x01"), std::nullopt);  // no prefix
  EXPECT_EQ(ParseHexBytes("01 02"), std::nullopt);
}

}  // namespace
}  // namespace vmm
