// 32-bit PVH ELF kernels (what QEMU's -kernel boots by its PHYS32_ENTRY note): accepted with
// the checks of the 64-bit path, and every malformed header refused with a reason.
#include <gtest/gtest.h>

#include <cstddef>

#include "tests/unit/boot/parse_error.h"
#include "tests/unit/boot/test_images.h"
#include "vmm/formats/kernel/kernel_image.h"

namespace vmm::boot {
namespace {

using namespace vmm::testing;  // the image builders and ErrorOf, ExpectRejected

template <typename T>
void Put(std::vector<uint8_t>& f, uint64_t off, T v) {
  ASSERT_LE(off + sizeof(T), f.size());
  std::memcpy(f.data() + off, &v, sizeof(T));
}

constexpr uint64_t kNoteOff = Elf32Layout::NoteAt(2);  // LOAD, NOTE
constexpr uint64_t kLoad = Elf32Layout::PhdrAt(0);
constexpr uint64_t kNote = Elf32Layout::PhdrAt(1);

TEST(Elf32Pvh, I386ImageIsRecognisedLikeA64BitOne) {
  auto r = ExpectOneSegmentKernel(MakePvhElf32(), BootProtocol::kPvh, 0x100000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->segments[0].gpa, 0x100000u);
  EXPECT_EQ(r->segments[0].file_offset, kNoteOff + 20);
  EXPECT_EQ(r->segments[0].file_size, 64u);
  EXPECT_EQ(r->segments[0].mem_size, 64u + 0x1000);
  EXPECT_EQ(r->lowest_gpa, 0x100000u);
  EXPECT_EQ(r->highest_gpa, 0x100000u + 64 + 0x1000);
  EXPECT_EQ(r->cmdline_max, kPvhCmdlineMax);
  EXPECT_EQ(r->elf_class, 32);
  EXPECT_EQ(r->elf_machine, EM_386);
  EXPECT_EQ(FormatName(*r), "ELF32 i386 with a Xen PVH entry note");
}

TEST(Elf32Pvh, X32ImageIsRecognised) {
  ElfSpec spec;
  spec.elf32 = true;  // ELFCLASS32 with EM_X86_64, as `ld -m elf32_x86_64` makes
  auto r = ParseKernelImage(MakePvhElf(spec));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(FormatName(*r), "ELF32 x86_64 with a Xen PVH entry note");
}

TEST(Elf32Pvh, Elf64StillSaysItsClass) {
  auto r = ParseKernelImage(MakePvhElf());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(FormatName(*r), "ELF64 x86_64 with a Xen PVH entry note");
}

TEST(Elf32Pvh, MalformedHeadersAreRejected) {
  ExpectRejected<ElfSpec>(
      MakePvhElf32,
      {
          {"ELF32 for ARM", [](ElfSpec& s) { s.machine = EM_ARM; }, "not an i386 or x86_64 ELF"},
          {"entry outside the segments", [](ElfSpec& s) { s.entry = 0x900000; },
           "outside the loaded segments"},
      });
  ExpectRejected<ElfSpec>(MakePvhElf, {{"ELF64 for i386", [](ElfSpec& s) { s.machine = EM_386; },
                                        "not an x86_64 ELF"}});
}

TEST(Elf32Pvh, UnknownElfClassIsRejected) {
  auto f = MakePvhElf32();
  f[EI_CLASS] = ELFCLASSNONE;
  EXPECT_NE(ErrorOf(f).find("neither a 32-bit nor a 64-bit ELF"), std::string::npos);
  f[EI_CLASS] = 3;
  EXPECT_NE(ErrorOf(f).find("neither a 32-bit nor a 64-bit ELF"), std::string::npos);
}

TEST(Elf32Pvh, Elf64HeadersUnderA32BitClassAreRejected) {
  auto f = MakePvhElf();
  f[EI_CLASS] = ELFCLASS32;
  EXPECT_FALSE(ParseKernelImage(f).has_value());
}

TEST(Elf32Pvh, BigEndianIsRejected) {
  auto f = MakePvhElf32();
  f[EI_DATA] = ELFDATA2MSB;
  EXPECT_NE(ErrorOf(f).find("not little-endian"), std::string::npos);
}

TEST(Elf32Pvh, TruncatedHeadersAreRejected) {
  auto f = MakePvhElf32();
  for (size_t len : {size_t{4}, size_t{15}, sizeof(Elf32_Ehdr) - 1, sizeof(Elf32_Ehdr),
                     size_t{kNote + 4}, size_t{kNoteOff}, size_t{kNoteOff + 10}, f.size() - 1}) {
    std::vector<uint8_t> cut(f.begin(), f.begin() + static_cast<long>(len));
    EXPECT_FALSE(ParseKernelImage(cut).has_value()) << "length " << len;
  }
  EXPECT_NE(ErrorOf({f.begin(), f.begin() + 40}).find("shorter than an ELF header"),
            std::string::npos);
}

TEST(Elf32Pvh, ProgramHeadersOutsideTheFileAreRejected) {
  auto f = MakePvhElf32();
  Put<uint32_t>(f, offsetof(Elf32_Ehdr, e_phoff), 0xFFFFFFF0u);
  EXPECT_NE(ErrorOf(f).find("program headers outside the file"), std::string::npos);

  f = MakePvhElf32();
  Put<uint16_t>(f, offsetof(Elf32_Ehdr, e_phnum), 60);  // 60 * 32 bytes: past the end
  EXPECT_NE(ErrorOf(f).find("program headers outside the file"), std::string::npos);
}

TEST(Elf32Pvh, BadProgramHeaderCountOrSizeIsRejected) {
  auto f = MakePvhElf32();
  Put<uint16_t>(f, offsetof(Elf32_Ehdr, e_phnum), 0);
  EXPECT_NE(ErrorOf(f).find("bad program header count"), std::string::npos);
  Put<uint16_t>(f, offsetof(Elf32_Ehdr, e_phnum), 0xFFFF);
  EXPECT_NE(ErrorOf(f).find("bad program header count"), std::string::npos);

  f = MakePvhElf32();
  Put<uint16_t>(f, offsetof(Elf32_Ehdr, e_phentsize), sizeof(Elf64_Phdr));
  EXPECT_NE(ErrorOf(f).find("unexpected program header size"), std::string::npos);
}

TEST(Elf32Pvh, NotAnExecutableIsRejected) {
  auto f = MakePvhElf32();
  Put<uint16_t>(f, offsetof(Elf32_Ehdr, e_type), ET_DYN);
  EXPECT_NE(ErrorOf(f).find("ET_EXEC"), std::string::npos);
}

TEST(Elf32Pvh, SegmentPastTheEndOfTheFileIsRejected) {
  auto f = MakePvhElf32();
  Put<uint32_t>(f, kLoad + offsetof(Elf32_Phdr, p_filesz), 0xFFFFFFF0u);
  EXPECT_NE(ErrorOf(f).find("segment 0 extends past the end of the file"), std::string::npos);

  f = MakePvhElf32();
  Put<uint32_t>(f, kLoad + offsetof(Elf32_Phdr, p_offset), 0xFFFFFFFFu);
  EXPECT_NE(ErrorOf(f).find("past the end of the file"), std::string::npos);

  f = MakePvhElf32();  // the note segment, too
  Put<uint32_t>(f, kNote + offsetof(Elf32_Phdr, p_filesz), static_cast<uint32_t>(f.size()));
  EXPECT_NE(ErrorOf(f).find("segment 1 extends past the end of the file"), std::string::npos);
}

TEST(Elf32Pvh, FileSizeAboveMemorySizeIsRejected) {
  auto f = MakePvhElf32();
  Put<uint32_t>(f, kLoad + offsetof(Elf32_Phdr, p_memsz), 16);
  EXPECT_NE(ErrorOf(f).find("file size exceeds its memory size"), std::string::npos);
}

TEST(Elf32Pvh, SegmentEndingAbove4GiBIsRejected) {
  ElfSpec spec;
  spec.paddr = spec.entry = 0xFFFFF000;
  spec.extra_bss = 0x2000;
  EXPECT_NE(ErrorOf(MakePvhElf32(spec)).find("of a 32-bit ELF ends above 4 GiB"),
            std::string::npos);
  spec.extra_bss = 0x1000 - 64;  // ends exactly at 4 GiB: fine for the parser
  EXPECT_TRUE(ParseKernelImage(MakePvhElf32(spec)).has_value());
}

TEST(Elf32Pvh, OverlappingSegmentsAreRejected) {
  ElfSpec spec;
  spec.second_segment_paddr = spec.paddr + 0x800;  // inside the first one's bss
  EXPECT_NE(ErrorOf(MakePvhElf32(spec)).find("segments overlap"), std::string::npos);
  spec.second_segment_paddr = spec.paddr - 0x10;  // its tail runs into the first
  EXPECT_NE(ErrorOf(MakePvhElf32(spec)).find("segments overlap"), std::string::npos);
  spec.second_segment_paddr = spec.paddr;
  EXPECT_NE(ErrorOf(MakePvhElf32(spec)).find("segments overlap"), std::string::npos);
}

TEST(Elf32Pvh, AdjacentSegmentsAreAccepted) {
  ElfSpec spec;
  spec.second_segment_paddr = spec.paddr + 64 + spec.extra_bss;
  auto r = ParseKernelImage(MakePvhElf32(spec));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->segments.size(), 2u);
  EXPECT_EQ(r->highest_gpa, spec.second_segment_paddr + 64 + spec.extra_bss);
}

// A note the parser cannot use is skipped, never read out of bounds: the image then has no
// PVH entry.
TEST(Elf32Pvh, UnusableNotesAreIgnored) {
  struct Case {
    const char* what;
    uint64_t offset;  // a 32-bit field of the image, set to `value`
    uint32_t value;
  } cases[] = {
      {"huge name size", kNoteOff, 0xFFFFFFFFu},
      {"huge descriptor size (aligning it must not wrap)", kNoteOff + 4, 0xFFFFFFFDu},
      {"entry note of size 0", kNoteOff + 4, 0},
      {"entry note of size 2", kNoteOff + 4, 2},
      {"entry note of size 6", kNoteOff + 4, 6},
      {"note segment shorter than a note header", kNote + offsetof(Elf32_Phdr, p_filesz), 11},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto f = MakePvhElf32();
    Put<uint32_t>(f, c.offset, c.value);
    EXPECT_THAT(ErrorOf(f), ::testing::HasSubstr("no PVH entry note"));
  }
}

TEST(Elf32Pvh, EntryNoteAfterAnotherNoteIsFound) {
  // Two notes in one segment: a foreign one first, then Xen's. Built by hand: the note
  // segment grows by one 16-byte "GNU" note placed before the Xen note.
  auto f = MakePvhElf32();
  std::vector<uint8_t> gnu = {4, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0};
  f.insert(f.begin() + static_cast<long>(kNoteOff), gnu.begin(), gnu.end());
  Put<uint32_t>(f, kNote + offsetof(Elf32_Phdr, p_filesz), 20 + 16);
  Put<uint32_t>(f, kLoad + offsetof(Elf32_Phdr, p_offset), kNoteOff + 20 + 16);
  auto r = ParseKernelImage(f);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->entry, 0x100000u);
}

TEST(Elf64Pvh, OverlappingSegmentsAreRejected) {
  ElfSpec spec;
  spec.second_segment_paddr = spec.paddr + 0x20;
  EXPECT_NE(ErrorOf(MakePvhElf(spec)).find("segments overlap"), std::string::npos);
  static_assert(Elf64Layout::PhdrAt(1) == sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr));
}

}  // namespace
}  // namespace vmm::boot
