// Recognises a kernel file and says how to load it, without touching guest memory.
// The file is the operator's, not the guest's, but it is still parsed defensively:
// every offset and size is checked against the file before use (fuzzed in tests/fuzz/).
//
//   ASSIGN_OR_RETURN(KernelImage image, ParseKernelImage(file_bytes));
//   for (const LoadSegment& s : image.segments) copy file[s.file_offset, +s.file_size) to s.gpa
//
// Two formats: an ELF (ELF64 x86_64, or ELF32 i386 / x86_64) with a Xen PVH entry note (PVH
// boot, 32-bit protected-mode entry) and a Linux bzImage (boot protocol >= 2.12, 64-bit entry
// at load address + 0x200).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmm::boot {

enum class BootProtocol { kPvh, kLinux64 };
const char* ProtocolName(BootProtocol protocol);

struct LoadSegment {
  uint64_t gpa;
  uint64_t file_offset;
  uint64_t file_size;
  uint64_t mem_size;  // >= file_size; the tail is zeroed
};

struct KernelImage {
  BootProtocol protocol;
  uint64_t entry;  // guest-physical address of the first instruction
  std::vector<LoadSegment> segments;
  uint64_t lowest_gpa;   // first byte the kernel occupies
  uint64_t highest_gpa;  // one past the last byte it occupies (incl. bzImage init_size)
  uint32_t cmdline_max;  // longest command line, excluding the NUL
  // bzImage only: the setup header (file bytes 0x1F1 up to its end), copied into the zero page.
  std::vector<uint8_t> setup_header;
  uint64_t initrd_addr_max = 0xFFFFFFFF;  // highest address the initrd may end at (inclusive)
  uint16_t boot_protocol_version = 0;
  // bzImage only: where the compressed kernel lies in the file (payload_offset, boot
  // protocol 2.08+, counted from the protected-mode kernel); zero when it lies outside.
  uint64_t payload_offset = 0;
  uint64_t payload_length = 0;
  // PVH ELF only: 32 or 64, and e_machine (EM_386 or EM_X86_64).
  uint8_t elf_class = 0;
  uint16_t elf_machine = 0;
  uint64_t first_load_vaddr = 0;  // p_vaddr of the first PT_LOAD (a vmlinux's _text)
};

// What the file is, for --dry-run: "ELF32 i386 with a Xen PVH entry note", "bzImage, boot
// protocol 2.15".
std::string FormatName(const KernelImage& image);

// ErrorKind::kInvalidArgument with a reason when the bytes are no kernel we can boot.
Result<KernelImage> ParseKernelImage(std::span<const uint8_t> file);

// Format-specific parsers, exposed for tests.
Result<KernelImage> ParsePvhElf(std::span<const uint8_t> file);
Result<KernelImage> ParseBzImage(std::span<const uint8_t> file);

// Linux's COMMAND_LINE_SIZE on x86 is 2048 including the NUL; a PVH ELF does not say its own.
inline constexpr uint32_t kPvhCmdlineMax = 2047;

}  // namespace vmm::boot
