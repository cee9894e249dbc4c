// Kernel files: ELF program headers, notes and symbol tables, bzImage setup headers,
// System.map text. Every load plan that
// parses must lie inside the file it came from.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "vmm/boot/boot_params.h"
#include "vmm/boot/elf_symbols.h"
#include "vmm/boot/kernel_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> file(data, size);
  auto syms = vmm::boot::ReadSymbols(file);
  if (syms) (void)syms->Describe(0xffffffff81000000ull);
  auto image = vmm::boot::ParseKernelImage(file);
  if (!image) return 0;
  for (const auto& s : image->segments) {
    if (s.file_offset > size || s.file_size > size - s.file_offset) std::abort();
    if (s.file_size > s.mem_size) std::abort();
  }
  if (image->lowest_gpa > image->highest_gpa) std::abort();
  if (image->protocol == vmm::boot::BootProtocol::kLinux64) {
    vmm::boot::BootInfo info;
    auto page = vmm::boot::BuildZeroPage(*image, info);
    if (!page || page->size() != 4096) std::abort();
  }
  return 0;
}
