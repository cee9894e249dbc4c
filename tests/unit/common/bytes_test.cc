#include "base/bytes.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace vmm {
namespace {

TEST(BigEndian, LoadsInNetworkOrder) {
  const std::vector<uint8_t> b = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x01, 0x02, 0x03, 0x04};
  EXPECT_EQ(LoadBe<uint16_t>(b, 0), 0x8001);
  EXPECT_EQ(LoadBe<uint32_t>(b, 2), 12u);
  EXPECT_EQ(LoadBe<uint64_t>(b, 2), 0x0000000c01020304ull);
  EXPECT_EQ(LoadBe<uint8_t>(b, 9), 0x04);
}

TEST(BigEndian, LoadOutsideTheSpanIsNullopt) {
  const std::vector<uint8_t> b = {1, 2, 3, 4};
  EXPECT_EQ(LoadBe<uint32_t>(b, 1), std::nullopt);
  EXPECT_EQ(LoadBe<uint16_t>(b, 4), std::nullopt);
  EXPECT_EQ(LoadBe<uint16_t>(b, UINT64_MAX), std::nullopt);
  EXPECT_EQ(LoadBe<uint32_t>(b, 0), 0x01020304u);
}

TEST(BigEndian, AppendAndStoreRoundTrip) {
  std::vector<uint8_t> out;
  AppendBe<uint16_t>(out, 0x8001);
  AppendBe<uint32_t>(out, 0xdeadbeef);
  AppendBe<uint64_t>(out, 0x0102030405060708ull);
  EXPECT_EQ(out,
            (std::vector<uint8_t>{0x80, 0x01, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(LoadBe<uint64_t>(out, 6), 0x0102030405060708ull);

  std::vector<uint8_t> page(6, 0);
  EXPECT_TRUE(StoreBe<uint32_t>(page, 2, 0x0a0b0c0d));
  EXPECT_EQ(page, (std::vector<uint8_t>{0, 0, 0x0a, 0x0b, 0x0c, 0x0d}));
  EXPECT_FALSE(StoreBe<uint32_t>(page, 3, 1));
  EXPECT_EQ(page[3], 0x0b);  // untouched
}

TEST(LittleEndian, StillLittle) {
  const std::vector<uint8_t> b = {0x01, 0x02, 0x03, 0x04};
  EXPECT_EQ(LoadLe<uint32_t>(b, 0), 0x04030201u);
  EXPECT_EQ(LoadBe<uint32_t>(b, 0), 0x01020304u);
}

}  // namespace
}  // namespace vmm
