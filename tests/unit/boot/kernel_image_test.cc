#include "vmm/formats/kernel/kernel_image.h"

#include <gtest/gtest.h>

#include "tests/unit/boot/parse_error.h"
#include "tests/unit/boot/test_images.h"

namespace vmm::boot {
namespace {

using namespace vmm::testing;  // the image builders and ErrorOf, ExpectRejected

TEST(KernelImage, PvhElfIsRecognised) {
  auto r = ExpectOneSegmentKernel(MakePvhElf(), BootProtocol::kPvh, 0x100000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->segments[0].mem_size, 64u + 0x1000);
  EXPECT_EQ(r->highest_gpa, 0x100000u + 64 + 0x1000);
  EXPECT_EQ(r->cmdline_max, kPvhCmdlineMax);
}

TEST(KernelImage, MalformedPvhElfIsRejected) {
  ExpectRejected<ElfSpec>(
      MakePvhElf,
      {
          {"no PVH note", [](ElfSpec& s) { s.with_pvh_note = false; }, "no PVH entry note"},
          {"another machine", [](ElfSpec& s) { s.machine = EM_AARCH64; }, "not an x86_64 ELF"},
          {"entry outside the segments", [](ElfSpec& s) { s.entry = 0x900000; },
           "outside the loaded segments"},
      });
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
  auto r = ExpectOneSegmentKernel(MakeBzImage(), BootProtocol::kLinux64, 0x100200);
  ASSERT_TRUE(r);
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

TEST(KernelImage, MalformedBzImageIsRejected) {
  ExpectRejected<BzSpec>(
      MakeBzImage,
      {
          {"boot protocol 2.10", [](BzSpec& s) { s.version = 0x020A; }, "older than 2.12"},
          {"no 64-bit entry", [](BzSpec& s) { s.xloadflags = 0; }, "XLF_KERNEL_64"},
          {"zImage", [](BzSpec& s) { s.loadflags = 0; }, "zImage"},
          {"no kernel after the setup", [](BzSpec& s) { s.kernel_bytes = 0x100; },
           "protected-mode kernel missing"},
      });
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
