// ELF kernels with a PVH entry: the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18) holds
// the 32-bit protected-mode entry point (Xen's public/elfnote.h; Linux arch/x86/platform/pvh).
// Both ELF classes: the entry is 32-bit protected mode either way, so an ELF32 (EM_386, or
// EM_X86_64 for an x32 link) boots exactly like an ELF64, as QEMU's PVH loader does it.
#include <elf.h>

#include <algorithm>
#include <cstring>

#include "base/bytes.h"
#include "vmm/formats/kernel/kernel_image.h"

namespace vmm::boot {
namespace {

constexpr uint32_t kXenElfNotePhys32Entry = 18;
constexpr size_t kMaxProgramHeaders = 64;
constexpr uint64_t k4GiB = 1ull << 32;

struct Elf64 {
  using Ehdr = Elf64_Ehdr;
  using Phdr = Elf64_Phdr;
  static constexpr uint8_t kClass = ELFCLASS64;
};
struct Elf32 {
  using Ehdr = Elf32_Ehdr;
  using Phdr = Elf32_Phdr;
  static constexpr uint8_t kClass = ELFCLASS32;
};

Error Bad(const std::string& why) { return InvalidArgument("not a bootable PVH ELF: " + why); }

uint64_t Align4(uint64_t v) { return (v + 3) & ~uint64_t{3}; }

// Walks one PT_NOTE segment; returns the PVH entry if present. Note headers have the same
// layout (three 32-bit words, 4-byte alignment) in both ELF classes on x86.
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

// Two PT_LOAD segments that share guest memory would be loaded one over the other (and the
// second's zeroed tail can wipe the first's bytes): no linker makes that, so refuse it.
Result<void> CheckNoOverlap(std::vector<LoadSegment> segments) {
  std::sort(segments.begin(), segments.end(),
            [](const LoadSegment& a, const LoadSegment& b) { return a.gpa < b.gpa; });
  for (size_t i = 1; i < segments.size(); ++i) {
    if (segments[i].gpa < segments[i - 1].gpa + segments[i - 1].mem_size) {
      return Bad("loadable segments overlap in memory");
    }
  }
  return Ok();
}

template <typename E>
Result<KernelImage> ParseClass(std::span<const uint8_t> file) {
  using Ehdr = typename E::Ehdr;
  using Phdr = typename E::Phdr;
  if (file.size() < sizeof(Ehdr)) return Bad("file shorter than an ELF header");
  Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof(eh));
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Bad("not little-endian");
  if constexpr (E::kClass == ELFCLASS64) {
    if (eh.e_machine != EM_X86_64) return Bad("not an x86_64 ELF");
  } else {
    if (eh.e_machine != EM_386 && eh.e_machine != EM_X86_64) {
      return Bad("not an i386 or x86_64 ELF");
    }
  }
  if (eh.e_type != ET_EXEC) return Bad("not an executable (ET_EXEC) ELF");
  if (eh.e_phentsize != sizeof(Phdr)) return Bad("unexpected program header size");
  if (eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders) return Bad("bad program header count");
  if (!InBounds(file.size(), eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Phdr))) {
    return Bad("program headers outside the file");
  }

  KernelImage image{};
  image.protocol = BootProtocol::kPvh;
  image.cmdline_max = kPvhCmdlineMax;
  image.elf_class = E::kClass == ELFCLASS64 ? 64 : 32;
  image.elf_machine = eh.e_machine;
  image.lowest_gpa = UINT64_MAX;
  image.highest_gpa = 0;
  std::optional<uint64_t> entry;
  bool saw_load = false;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Phdr ph;
    std::memcpy(&ph, file.data() + eh.e_phoff + i * sizeof(Phdr), sizeof(ph));
    const uint64_t offset = ph.p_offset, filesz = ph.p_filesz;
    const uint64_t paddr = ph.p_paddr, memsz = ph.p_memsz;
    if (!InBounds(file.size(), offset, filesz)) {
      return Bad("segment " + std::to_string(i) + " extends past the end of the file");
    }
    if (ph.p_type == PT_NOTE && !entry) entry = FindPvhEntry(file.subspan(offset, filesz));
    if (ph.p_type != PT_LOAD) continue;
    if (!saw_load) image.first_load_vaddr = ph.p_vaddr;
    saw_load = true;
    if (memsz == 0) continue;
    if (filesz > memsz) return Bad("segment file size exceeds its memory size");
    if (paddr > UINT64_MAX - memsz) return Bad("segment address overflows");
    // An ELF32's physical addresses are 32-bit: a segment running past 4 GiB is no image
    // a 32-bit loader could place (the sum cannot overflow: both terms are below 2^32).
    if (E::kClass == ELFCLASS32 && paddr + memsz > k4GiB) {
      return Bad("segment " + std::to_string(i) + " of a 32-bit ELF ends above 4 GiB");
    }
    image.segments.push_back({paddr, offset, filesz, memsz});
    image.lowest_gpa = std::min(image.lowest_gpa, paddr);
    image.highest_gpa = std::max(image.highest_gpa, paddr + memsz);
  }
  if (image.segments.empty()) return Bad("no loadable segments");
  RETURN_IF_ERROR(CheckNoOverlap(image.segments));
  if (!entry) {
    return Bad("no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); a Linux kernel needs CONFIG_PVH=y");
  }
  if (*entry < image.lowest_gpa || *entry >= image.highest_gpa) {
    return Bad("PVH entry point lies outside the loaded segments");
  }
  image.entry = *entry;
  return image;
}

}  // namespace

Result<KernelImage> ParsePvhElf(std::span<const uint8_t> file) {
  if (file.size() < EI_NIDENT) return Bad("file shorter than an ELF header");
  if (std::memcmp(file.data(), ELFMAG, SELFMAG) != 0) return Bad("no ELF magic");
  switch (file[EI_CLASS]) {
    case ELFCLASS64:
      return ParseClass<Elf64>(file);
    case ELFCLASS32:
      return ParseClass<Elf32>(file);
    default:
      return Bad("neither a 32-bit nor a 64-bit ELF");
  }
}

}  // namespace vmm::boot
