#include "vmm/vm/memory/guest_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "vmm/contract/layout.h"

namespace vmm {
namespace {

TEST(GuestMemory, WritesAndReadsInsideRam) {
  auto mem = GuestMemory::Create(64ull << 20);
  ASSERT_TRUE(mem.has_value()) << mem.error().ToString();
  uint8_t in[4] = {1, 2, 3, 4}, out[4] = {};
  ASSERT_TRUE(mem->Write(0x1000, in).has_value());
  ASSERT_TRUE(mem->Read(0x1000, out).has_value());
  EXPECT_EQ(std::memcmp(in, out, 4), 0);
}

TEST(GuestMemory, AccessesPastTheEndFail) {
  auto mem = GuestMemory::Create(64ull << 20);
  ASSERT_TRUE(mem.has_value());
  uint8_t buf[8] = {};
  EXPECT_FALSE(mem->Write((64ull << 20) - 4, buf).has_value());
  EXPECT_FALSE(mem->Read(UINT64_MAX - 2, buf).has_value());
  EXPECT_FALSE(mem->Fill(64ull << 20, 1, 0).has_value());
  EXPECT_TRUE(mem->Span(UINT64_MAX, 8).empty());
  EXPECT_TRUE(mem->Write((64ull << 20) - 8, buf).has_value());
}

TEST(GuestMemory, SizeIsSealed) {
  auto mem = GuestMemory::Create(32ull << 20);
  ASSERT_TRUE(mem.has_value());
  int seals = fcntl(mem->memfd(), F_GET_SEALS);
  EXPECT_TRUE(seals & F_SEAL_SHRINK);
  EXPECT_TRUE(seals & F_SEAL_GROW);
}

TEST(GuestMemory, LayoutSplitsAroundTheMmioHole) {
  auto regions = GuestMemory::Layout(5ull << 30);
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].size, x86::kMmioHoleStart);
  EXPECT_EQ(regions[1].guest_phys, x86::kMmioHoleEnd);
  EXPECT_EQ(regions[1].file_offset, x86::kMmioHoleStart);
  EXPECT_EQ(regions[0].size + regions[1].size, 5ull << 30);
}

TEST(GuestMemory, TooSmallIsRefused) { EXPECT_FALSE(GuestMemory::Create(1 << 20).has_value()); }

}  // namespace
}  // namespace vmm
