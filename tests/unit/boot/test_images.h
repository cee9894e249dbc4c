// Builders of small kernel images for tests and fuzz seeds: a PVH ELF (64- or 32-bit) and a
// bzImage whose fields can be broken one at a time.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace vmm::testing {

struct ElfSpec {
  uint64_t paddr = 0x100000;
  uint64_t entry = 0x100000;
  std::vector<uint8_t> code = std::vector<uint8_t>(64, 0x90);
  uint64_t extra_bss = 0x1000;
  bool with_pvh_note = true;
  uint16_t machine = EM_X86_64;
  bool elf32 = false;                 // ELFCLASS32 (with EM_386 or EM_X86_64)
  uint64_t second_segment_paddr = 0;  // non-zero: a second PT_LOAD of the same bytes there
};

// Offsets into what MakePvhElf builds, for tests that break one field.
template <typename Ehdr, typename Phdr>
struct ElfLayoutOf {
  static constexpr uint64_t kPhoff = sizeof(Ehdr);
  static constexpr uint64_t NoteAt(unsigned phnum) { return kPhoff + phnum * sizeof(Phdr); }
  // Where program header i starts, e.g. PhdrAt(0) + offsetof(Elf32_Phdr, p_filesz).
  static constexpr uint64_t PhdrAt(unsigned i) { return kPhoff + i * sizeof(Phdr); }
};

template <typename Ehdr, typename Phdr>
std::vector<uint8_t> MakePvhElfOf(const ElfSpec& spec, uint8_t elf_class) {
  // Layout: ELF header, program headers (LOAD, NOTE[, LOAD]), the note, the code.
  const unsigned phnum = spec.second_segment_paddr ? 3 : 2;
  const uint64_t phoff = sizeof(Ehdr);
  const uint64_t note_off = phoff + phnum * sizeof(Phdr);
  const uint64_t note_size = 12 + 4 + 4;  // header, "Xen\0", 4-byte entry
  const uint64_t code_off = note_off + note_size;
  std::vector<uint8_t> f(code_off + spec.code.size(), 0);
  Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = spec.machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = static_cast<decltype(eh.e_entry)>(spec.entry);
  eh.e_phoff = phoff;
  eh.e_ehsize = sizeof(Ehdr);
  eh.e_phentsize = sizeof(Phdr);
  eh.e_phnum = static_cast<uint16_t>(phnum);
  std::memcpy(f.data(), &eh, sizeof(eh));
  using Addr = decltype(Phdr{}.p_paddr);
  auto load_at = [&](uint64_t paddr) {
    Phdr load{};
    load.p_type = PT_LOAD;
    load.p_offset = static_cast<Addr>(code_off);
    load.p_paddr = load.p_vaddr = static_cast<Addr>(paddr);
    load.p_filesz = static_cast<Addr>(spec.code.size());
    load.p_memsz = static_cast<Addr>(spec.code.size() + spec.extra_bss);
    return load;
  };
  Phdr load = load_at(spec.paddr);
  std::memcpy(f.data() + phoff, &load, sizeof(load));
  Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = static_cast<Addr>(note_off);
  note.p_filesz = static_cast<Addr>(note_size);
  std::memcpy(f.data() + phoff + sizeof(Phdr), &note, sizeof(note));
  if (spec.second_segment_paddr) {
    Phdr second = load_at(spec.second_segment_paddr);
    std::memcpy(f.data() + phoff + 2 * sizeof(Phdr), &second, sizeof(second));
  }
  uint32_t hdr[3] = {4, 4, spec.with_pvh_note ? 18u : 17u};
  std::memcpy(f.data() + note_off, hdr, 12);
  std::memcpy(f.data() + note_off + 12, "Xen", 4);
  uint32_t entry32 = static_cast<uint32_t>(spec.entry);
  std::memcpy(f.data() + note_off + 16, &entry32, 4);
  std::memcpy(f.data() + code_off, spec.code.data(), spec.code.size());
  return f;
}

using Elf64Layout = ElfLayoutOf<Elf64_Ehdr, Elf64_Phdr>;
using Elf32Layout = ElfLayoutOf<Elf32_Ehdr, Elf32_Phdr>;

inline std::vector<uint8_t> MakePvhElf(const ElfSpec& spec = {}) {
  if (spec.elf32) return MakePvhElfOf<Elf32_Ehdr, Elf32_Phdr>(spec, ELFCLASS32);
  return MakePvhElfOf<Elf64_Ehdr, Elf64_Phdr>(spec, ELFCLASS64);
}

// An ELF32 i386 PVH image, as `ld -m elf_i386` makes for a 32-bit PVH kernel.
inline std::vector<uint8_t> MakePvhElf32(ElfSpec spec = {}) {
  spec.elf32 = true;
  if (spec.machine == EM_X86_64) spec.machine = EM_386;
  return MakePvhElf(spec);
}

struct BzSpec {
  uint16_t version = 0x020F;
  uint8_t setup_sects = 1;
  uint8_t loadflags = 0x01;
  uint16_t xloadflags = 0x01;
  uint32_t init_size = 0x10000;
  uint32_t cmdline_size = 2047;
  size_t kernel_bytes = 0x1000;
  uint32_t payload_offset = 0;  // from the protected-mode kernel; 0 with a length of 0: none
  uint32_t payload_length = 0;
};

inline std::vector<uint8_t> MakeBzImage(const BzSpec& spec = {}) {
  size_t sects = spec.setup_sects ? spec.setup_sects : 4u;  // boot.rst: 0 means 4
  size_t setup = (sects + 1u) * 512u;
  std::vector<uint8_t> f(setup + spec.kernel_bytes, 0);
  auto put16 = [&](size_t off, uint16_t v) { std::memcpy(f.data() + off, &v, 2); };
  auto put32 = [&](size_t off, uint32_t v) { std::memcpy(f.data() + off, &v, 4); };
  f[0x1F1] = spec.setup_sects;
  put16(0x1FE, 0xAA55);
  f[0x200] = 0xEB;  // jmp over the header
  f[0x201] = 0x6A;  // header ends at 0x26C
  std::memcpy(f.data() + 0x202, "HdrS", 4);
  put16(0x206, spec.version);
  f[0x211] = spec.loadflags;
  put32(0x22C, 0x7FFFFFFF);
  put32(0x230, 0x200000);
  put16(0x236, spec.xloadflags);
  put32(0x238, spec.cmdline_size);
  put32(0x248, spec.payload_offset);
  put32(0x24C, spec.payload_length);
  put32(0x260, spec.init_size);
  for (size_t i = setup; i < f.size(); ++i) f[i] = 0x90;
  return f;
}

}  // namespace vmm::testing
