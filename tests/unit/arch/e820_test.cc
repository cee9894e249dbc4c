#include "vmm/vm/arch/x86_64/e820.h"

#include <gtest/gtest.h>

#include "vmm/contract/layout.h"

namespace vmm::x86 {
namespace {

TEST(MemoryMap, SmallVmHasLowRamHoleAndExtendedRam) {
  auto map = BuildMemoryMap(GuestMemory::Layout(128ull << 20));
  ASSERT_EQ(map.size(), 3u);
  EXPECT_EQ(map[0].addr, 0u);
  EXPECT_EQ(map[0].size, kEbdaStart);
  EXPECT_EQ(map[1].type, uint32_t{kE820Reserved});
  EXPECT_EQ(map[2].addr, kHighMemStart);
  EXPECT_EQ(map[2].addr + map[2].size, 128ull << 20);
  EXPECT_EQ(LowRamEnd(map), 128ull << 20);
}

TEST(MemoryMap, LargeVmSkipsTheMmioHole) {
  auto map = BuildMemoryMap(GuestMemory::Layout(4ull << 30));
  ASSERT_EQ(map.size(), 4u);
  EXPECT_EQ(map[2].addr + map[2].size, kMmioHoleStart);
  EXPECT_EQ(map[3].addr, kMmioHoleEnd);
  EXPECT_EQ(map[3].size, (4ull << 30) - kMmioHoleStart);
  uint64_t ram = 0;
  for (auto& e : map) {
    if (e.type == kE820Ram) ram += e.size;
  }
  EXPECT_EQ(ram + (kHighMemStart - kEbdaStart), 4ull << 30);
}

TEST(MemoryMap, AcpiTablesLieInReservedMemory) {
  auto map = BuildMemoryMap(GuestMemory::Layout(64ull << 20));
  EXPECT_GE(kAcpiTablesAddr, map[1].addr);
  EXPECT_LE(kAcpiTablesAddr + kAcpiTablesMax, map[1].addr + map[1].size);
}

}  // namespace
}  // namespace vmm::x86
