// ELF64 kernels with a PVH entry: the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18) holds
// the 32-bit protected-mode entry point (Xen's public/elfnote.h; Linux arch/x86/platform/pvh).
#include <elf.h>

#include <algorithm>
#include <cstring>

#include "vmm/boot/kernel_image.h"
#include "vmm/common/bytes.h"

namespace vmm::boot {
namespace {

constexpr uint32_t kXenElfNotePhys32Entry = 18;
constexpr size_t kMaxProgramHeaders = 64;

Error Bad(const std::string& why) { return InvalidArgument("not a bootable PVH ELF: " + why); }

uint64_t Align4(uint64_t v) { return (v + 3) & ~uint64_t{3}; }

// Walks one PT_NOTE segment; returns the PVH entry if present.
std::optional<uint64_t> FindPvhEntry(std::span<const uint8_t> notes) {
  uint64_t off = 0;
  while (InBounds(notes.size(), off, 12)) {
    uint32_t namesz = *LoadLe<uint32_t>(notes, off);
    uint32_t descsz = *LoadLe<uint32_t>(notes, off + 4);
    uint32_t type = *LoadLe<uint32_t>(notes, off + 8);
    uint64_t name_off = off + 12;
    uint64_t desc_off = name_off + Align4(namesz);
    if (!InBounds(notes.size(), name_off, Align4(namesz)) ||
        !InBounds(notes.size(), desc_off, descsz)) {
      return std::nullopt;
    }
    bool is_xen = namesz == 4 && std::memcmp(notes.data() + name_off, "Xen", 4) == 0;
    if (is_xen && type == kXenElfNotePhys32Entry) {
      if (descsz == 4) return *LoadLe<uint32_t>(notes, desc_off);
      if (descsz == 8) return *LoadLe<uint64_t>(notes, desc_off);
      return std::nullopt;
    }
    off = desc_off + Align4(descsz);
  }
  return std::nullopt;
}

}  // namespace

Result<KernelImage> ParsePvhElf(std::span<const uint8_t> file) {
  if (file.size() < sizeof(Elf64_Ehdr)) return Bad("file shorter than an ELF header");
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof(eh));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return Bad("no ELF magic");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return Bad("not a 64-bit ELF");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Bad("not little-endian");
  if (eh.e_machine != EM_X86_64) return Bad("not an x86_64 ELF");
  if (eh.e_type != ET_EXEC) return Bad("not an executable (ET_EXEC) ELF");
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) return Bad("unexpected program header size");
  if (eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders) return Bad("bad program header count");
  if (!InBounds(file.size(), eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr))) {
    return Bad("program headers outside the file");
  }

  KernelImage image{};
  image.protocol = BootProtocol::kPvh;
  image.cmdline_max = kPvhCmdlineMax;
  image.lowest_gpa = UINT64_MAX;
  image.highest_gpa = 0;
  std::optional<uint64_t> entry;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, file.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof(ph));
    if (!InBounds(file.size(), ph.p_offset, ph.p_filesz)) {
      return Bad("segment " + std::to_string(i) + " extends past the end of the file");
    }
    if (ph.p_type == PT_NOTE && !entry) {
      entry = FindPvhEntry(file.subspan(ph.p_offset, ph.p_filesz));
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz) return Bad("segment file size exceeds its memory size");
    if (ph.p_paddr > UINT64_MAX - ph.p_memsz) return Bad("segment address overflows");
    image.segments.push_back({ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
    image.lowest_gpa = std::min(image.lowest_gpa, ph.p_paddr);
    image.highest_gpa = std::max(image.highest_gpa, ph.p_paddr + ph.p_memsz);
  }
  if (image.segments.empty()) return Bad("no loadable segments");
  if (!entry) {
    return Bad("no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); a Linux kernel needs CONFIG_PVH=y");
  }
  if (*entry < image.lowest_gpa || *entry >= image.highest_gpa) {
    return Bad("PVH entry point lies outside the loaded segments");
  }
  image.entry = *entry;
  return image;
}

}  // namespace vmm::boot
