#include "vmm/formats/virtio/guest_ram.h"

#include <gtest/gtest.h>

#include <vector>

#include "vmm/formats/virtio/fake_guest_ram.h"

namespace vmm::virtio {
namespace {

TEST(GuestRam, TranslatesARangeInsideOneRegion) {
  std::vector<uint8_t> backing(0x1000);
  GuestRam ram;
  ASSERT_TRUE(ram.AddRegion({0x10000, backing.size(), backing.data()}).has_value());
  std::span<uint8_t> s = ram.Translate(0x10010, 0x20);
  ASSERT_EQ(s.size(), 0x20u);
  EXPECT_EQ(s.data(), backing.data() + 0x10);
  EXPECT_EQ(ram.Translate(0x10000, 0x1000).data(), backing.data());  // whole region
}

TEST(GuestRam, RangeEndingPastTheRegionIsEmpty) {
  FakeGuestRam mem({{0x10000, 0x1000}});
  EXPECT_TRUE(mem.ram().Translate(0x10FFF, 2).empty());
  EXPECT_TRUE(mem.ram().Translate(0x11000, 1).empty());
  EXPECT_TRUE(mem.ram().Translate(0xFFFF, 2).empty());  // starts below
  EXPECT_FALSE(mem.ram().Translate(0x10FFF, 1).empty());
}

TEST(GuestRam, RangeAcrossAdjacentRegionsIsEmpty) {
  // Two regions back to back in guest-physical space are separate host mappings.
  FakeGuestRam mem({{0, 0x1000}, {0x1000, 0x1000}});
  EXPECT_TRUE(mem.ram().Translate(0xFF0, 0x20).empty());
  EXPECT_FALSE(mem.ram().Translate(0x1000, 0x20).empty());
  EXPECT_FALSE(mem.ram().Translate(0xFE0, 0x20).empty());
}

TEST(GuestRam, WrappingOrHugeRangesAreEmpty) {
  constexpr uint64_t kHigh = 0xFFFFFFFFFFFFE000ull;  // ends at 2^64 - 4096
  FakeGuestRam mem({{0, 0x1000}, {kHigh, 0x1000}});
  EXPECT_TRUE(mem.ram().Translate(UINT64_MAX, 2).empty());
  EXPECT_TRUE(mem.ram().Translate(kHigh + 0xFFF, UINT64_MAX).empty());
  EXPECT_TRUE(mem.ram().Translate(kHigh, 0x1001).empty());
  EXPECT_TRUE(mem.ram().Translate(0x10, UINT64_MAX).empty());
  EXPECT_TRUE(mem.ram().Translate(0x10, UINT64_MAX - 0x8).empty());
  EXPECT_FALSE(mem.ram().Translate(kHigh, 0x1000).empty());
}

TEST(GuestRam, RegionEndingAtTheTopOfTheAddressSpaceIsRefused) {
  std::vector<uint8_t> backing(0x1000);
  GuestRam ram;
  EXPECT_FALSE(ram.AddRegion({0xFFFFFFFFFFFFF000ull, 0x1000, backing.data()}).has_value());
}

TEST(GuestRam, ZeroLengthIsEmpty) {
  FakeGuestRam mem(0x1000);
  EXPECT_TRUE(mem.ram().Translate(0, 0).empty());
}

TEST(GuestRam, RefusesBadRegions) {
  std::vector<uint8_t> backing(0x2000);
  GuestRam ram;
  EXPECT_FALSE(ram.AddRegion({0, 0, backing.data()}).has_value());
  EXPECT_FALSE(ram.AddRegion({0, 0x1000, nullptr}).has_value());
  EXPECT_FALSE(ram.AddRegion({UINT64_MAX - 0x10, 0x1000, backing.data()}).has_value());
  ASSERT_TRUE(ram.AddRegion({0x1000, 0x1000, backing.data()}).has_value());
  EXPECT_FALSE(ram.AddRegion({0x1800, 0x1000, backing.data() + 0x1000}).has_value());  // overlap
  EXPECT_FALSE(ram.AddRegion({0, 0x2000, backing.data()}).has_value());                // covers it
  EXPECT_TRUE(ram.AddRegion({0x2000, 0x1000, backing.data() + 0x1000}).has_value());   // adjacent
  EXPECT_EQ(ram.regions().size(), 2u);
}

TEST(GuestRam, RefusesMoreThanTheMaximumRegions) {
  std::vector<uint8_t> backing(16);
  GuestRam ram;
  for (size_t i = 0; i < GuestRam::kMaxRegions; ++i) {
    ASSERT_TRUE(ram.AddRegion({i * 0x1000, 16, backing.data()}).has_value());
  }
  EXPECT_FALSE(ram.AddRegion({0x1000000, 16, backing.data()}).has_value());
}

TEST(GuestRam, SharedLoadsAndStoresWorkAlignedAndUnaligned) {
  alignas(8) uint8_t buf[16] = {};
  StoreShared<uint32_t>(buf, 0x11223344);
  StoreShared<uint32_t>(buf + 5, 0xAABBCCDD);  // unaligned
  EXPECT_EQ(LoadShared<uint32_t>(buf), 0x11223344u);
  EXPECT_EQ(LoadShared<uint32_t>(buf + 5), 0xAABBCCDDu);
  EXPECT_EQ(buf[5], 0xDD);  // little-endian
  StoreRelease<uint16_t>(buf + 10, 0xBEEF);
  EXPECT_EQ(LoadAcquire<uint16_t>(buf + 10), 0xBEEF);
  EXPECT_EQ(LoadShared<uint64_t>(buf + 1), LoadShared<uint64_t>(buf + 1));
}

}  // namespace
}  // namespace vmm::virtio
