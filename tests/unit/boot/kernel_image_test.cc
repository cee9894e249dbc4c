#include "vmm/formats/kernel/kernel_image.h"

#include <gtest/gtest.h>

#include "tests/unit/boot/parse_error.h"
#include "tests/unit/boot/test_images.h"

namespace vmm::boot {
namespace {

using vmm::testing::BzSpec;
using vmm::testing::ElfSpec;
using vmm::testing::ErrorOf;
using vmm::testing::MakeBzImage;
using vmm::testing::MakePvhElf;

TEST(KernelImage, PvhElfIsRecognised) {
  auto r = ParseKernelImage(MakePvhElf());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->protocol, BootProtocol::kPvh);
  EXPECT_EQ(r->entry, 0x100000u);
  ASSERT_EQ(r->segments.size(), 1u);
  EXPECT_EQ(r->segments[0].mem_size, 64u + 0x1000);
  EXPECT_EQ(r->highest_gpa, 0x100000u + 64 + 0x1000);
  EXPECT_EQ(r->cmdline_max, kPvhCmdlineMax);
}

TEST(KernelImage, ElfWithoutPvhNoteIsRejected) {
  ElfSpec spec;
  spec.with_pvh_note = false;
  EXPECT_NE(ErrorOf(MakePvhElf(spec)).find("no PVH entry note"), std::string::npos);
}

TEST(KernelImage, ElfForAnotherMachineIsRejected) {
  ElfSpec spec;
  spec.machine = EM_AARCH64;
  EXPECT_NE(ErrorOf(MakePvhElf(spec)).find("not an x86_64 ELF"), std::string::npos);
}

TEST(KernelImage, EntryOutsideSegmentsIsRejected) {
  ElfSpec spec;
  spec.entry = 0x900000;
  EXPECT_NE(ErrorOf(MakePvhElf(spec)).find("outside the loaded segments"), std::string::npos);
}

TEST(KernelImage, TruncatedElfIsRejected) {
  auto f = MakePvhElf();
  for (size_t len : {size_t{3}, size_t{40}, size_t{100}, f.size() - 1}) {
    std::vector<uint8_t> cut(f.begin(), f.begin() + static_cast<long>(len));
    EXPECT_FALSE(ParseKernelImage(cut).has_value()) << "length " << len;
  }
}

TEST(KernelImage, SegmentPastEndOfFileIsRejected) {
  auto f = MakePvhElf();
  // Program header 0's p_filesz sits at phoff + 32.
  uint64_t huge = 1ull << 40;
  std::memcpy(f.data() + sizeof(Elf64_Ehdr) + 32, &huge, 8);
  EXPECT_NE(ErrorOf(f).find("past the end of the file"), std::string::npos);
}

TEST(KernelImage, BzImageIsRecognised) {
  auto r = ParseKernelImage(MakeBzImage());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->protocol, BootProtocol::kLinux64);
  EXPECT_EQ(r->entry, 0x100200u);
  ASSERT_EQ(r->segments.size(), 1u);
  EXPECT_EQ(r->segments[0].file_offset, 1024u);
  EXPECT_EQ(r->segments[0].file_size, 0x1000u);
  EXPECT_EQ(r->highest_gpa, 0x100000u + 0x10000);  // init_size is larger than the file
  EXPECT_EQ(r->cmdline_max, 2047u);
  EXPECT_EQ(r->setup_header.size(), 0x26Cu - 0x1F1);
}

TEST(KernelImage, BzImagePayloadIsInFileOffsets) {
  BzSpec spec;
  spec.payload_offset = 0x100;
  spec.payload_length = 0x800;
  auto r = ParseKernelImage(MakeBzImage(spec));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->payload_offset, 1024u + 0x100);
  EXPECT_EQ(r->payload_length, 0x800u);
}

TEST(KernelImage, BzImagePayloadPastTheFileIsNotReported) {
  BzSpec spec;
  spec.payload_offset = 0x100;
  spec.payload_length = 0x1000;  // the kernel is 0x1000 bytes: this runs 0x100 past its end
  auto r = ParseKernelImage(MakeBzImage(spec));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->payload_offset, 0u);
  EXPECT_EQ(r->payload_length, 0u);
}

TEST(KernelImage, PvhElfReportsItsFirstLoadAddress) {
  ElfSpec spec;
  spec.second_segment_paddr = 0x400000;
  auto r = ParseKernelImage(MakePvhElf(spec));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->first_load_vaddr, 0x100000u);
}

TEST(KernelImage, OldBootProtocolIsRejected) {
  BzSpec spec;
  spec.version = 0x020A;
  EXPECT_NE(ErrorOf(MakeBzImage(spec)).find("older than 2.12"), std::string::npos);
}

TEST(KernelImage, BzImageWithout64BitEntryIsRejected) {
  BzSpec spec;
  spec.xloadflags = 0;
  EXPECT_NE(ErrorOf(MakeBzImage(spec)).find("XLF_KERNEL_64"), std::string::npos);
}

TEST(KernelImage, ZImageIsRejected) {
  BzSpec spec;
  spec.loadflags = 0;
  EXPECT_NE(ErrorOf(MakeBzImage(spec)).find("zImage"), std::string::npos);
}

TEST(KernelImage, BzImageWithoutKernelIsRejected) {
  BzSpec spec;
  spec.kernel_bytes = 0x100;
  EXPECT_NE(ErrorOf(MakeBzImage(spec)).find("protected-mode kernel missing"), std::string::npos);
}

TEST(KernelImage, ZeroSetupSectsMeansFour) {
  BzSpec spec;
  spec.setup_sects = 0;
  auto f = MakeBzImage(spec);
  auto r = ParseKernelImage(f);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->segments[0].file_offset, 5u * 512);
}

TEST(KernelImage, RandomBytesAreNotAKernel) {
  std::vector<uint8_t> junk(4096, 0x5A);
  EXPECT_NE(ErrorOf(junk).find("not a kernel this VMM can boot"), std::string::npos);
  EXPECT_FALSE(ParseKernelImage({}).has_value());
}

}  // namespace
}  // namespace vmm::boot
