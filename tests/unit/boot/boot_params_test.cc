#include "vmm/vm/boot/boot_params.h"

#include <gtest/gtest.h>

#include "base/bytes.h"
#include "tests/unit/boot/test_images.h"
#include "vmm/contract/layout.h"

namespace vmm::boot {
namespace {

BootInfo SampleInfo() {
  BootInfo info;
  info.memory_map = x86::BuildMemoryMap(GuestMemory::Layout(256ull << 20));
  info.cmdline_gpa = x86::kCmdlineAddr;
  info.cmdline_len = 10;
  info.initrd_gpa = 0x8000000;
  info.initrd_size = 0x12345;
  info.rsdp_gpa = x86::kAcpiTablesAddr;
  return info;
}

TEST(PvhStartInfo, FieldsFollowVersion1Layout) {
  auto blob = BuildPvhStartInfo(SampleInfo(), x86::kPvhStartInfoAddr);
  ASSERT_TRUE(blob.has_value());
  std::span<const uint8_t> b(*blob);
  EXPECT_EQ(LoadLe<uint32_t>(b, 0), kPvhStartInfoMagic);
  EXPECT_EQ(LoadLe<uint32_t>(b, 4), 1u);
  EXPECT_EQ(LoadLe<uint32_t>(b, 12), 1u);  // one module: the initrd
  EXPECT_EQ(LoadLe<uint64_t>(b, 16), x86::kPvhStartInfoAddr + kPvhModlistOffset);
  EXPECT_EQ(LoadLe<uint64_t>(b, kPvhModlistOffset), 0x8000000u);
  EXPECT_EQ(LoadLe<uint64_t>(b, kPvhModlistOffset + 8), 0x12345u);
  EXPECT_EQ(LoadLe<uint64_t>(b, 24), x86::kCmdlineAddr);
  EXPECT_EQ(LoadLe<uint64_t>(b, 32), x86::kAcpiTablesAddr);
  EXPECT_EQ(LoadLe<uint64_t>(b, 40), x86::kPvhMemmapAddr);
  EXPECT_EQ(LoadLe<uint32_t>(b, 48), 3u);
  // Second entry: the reserved EBDA..1 MiB hole.
  uint64_t e1 = x86::kPvhMemmapAddr - x86::kPvhStartInfoAddr + 24;
  EXPECT_EQ(LoadLe<uint64_t>(b, e1), x86::kEbdaStart);
  EXPECT_EQ(LoadLe<uint32_t>(b, e1 + 16), uint32_t{x86::kE820Reserved});
}

TEST(PvhStartInfo, NoInitrdMeansNoModules) {
  BootInfo info = SampleInfo();
  info.initrd_size = 0;
  auto blob = BuildPvhStartInfo(info, x86::kPvhStartInfoAddr);
  ASSERT_TRUE(blob.has_value());
  EXPECT_EQ(LoadLe<uint32_t>(*blob, 12), 0u);
  EXPECT_EQ(LoadLe<uint64_t>(*blob, 16), 0u);
}

TEST(PvhStartInfo, OversizedMemoryMapIsRefused) {
  BootInfo info = SampleInfo();
  info.memory_map.resize(x86::kPvhMemmapMaxEntries + 1);
  EXPECT_FALSE(BuildPvhStartInfo(info, x86::kPvhStartInfoAddr).has_value());
}

TEST(ZeroPage, CarriesHeaderCmdlineInitrdE820AndRsdp) {
  auto image = ParseKernelImage(vmm::testing::MakeBzImage());
  ASSERT_TRUE(image.has_value());
  auto page = BuildZeroPage(*image, SampleInfo());
  ASSERT_TRUE(page.has_value());
  std::span<const uint8_t> p(*page);
  ASSERT_EQ(p.size(), 4096u);
  EXPECT_EQ(LoadLe<uint16_t>(p, 0x1FE), 0xAA55);              // copied setup header
  EXPECT_EQ(LoadLe<uint32_t>(p, 0x202), 0x53726448u);         // "HdrS"
  EXPECT_EQ(LoadLe<uint8_t>(p, 0x210), 0xFF);                 // type_of_loader
  EXPECT_EQ(LoadLe<uint8_t>(p, 0x211).value() & 0x81, 0x81);  // LOADED_HIGH | CAN_USE_HEAP
  EXPECT_EQ(LoadLe<uint32_t>(p, 0x228), x86::kCmdlineAddr);
  EXPECT_EQ(LoadLe<uint32_t>(p, 0x218), 0x8000000u);
  EXPECT_EQ(LoadLe<uint32_t>(p, 0x21C), 0x12345u);
  EXPECT_EQ(LoadLe<uint64_t>(p, 0x070), x86::kAcpiTablesAddr);
  EXPECT_EQ(LoadLe<uint8_t>(p, 0x1E8), 3);
  EXPECT_EQ(LoadLe<uint64_t>(p, 0x2D0 + 2 * 20), x86::kHighMemStart);
  EXPECT_EQ(LoadLe<uint32_t>(p, 0x2D0 + 2 * 20 + 16), uint32_t{x86::kE820Ram});
}

}  // namespace
}  // namespace vmm::boot
