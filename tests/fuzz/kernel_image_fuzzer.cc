// Kernel files: ELF program headers (both ELF classes), notes and symbol tables, bzImage
// setup headers, System.map text. Every load plan that parses must lie inside the file it
// came from, keep its segments apart and its entry inside them. Seeds in corpus/
// kernel_image_fuzzer: ELF64, ELF32 i386 and x32 PVH images, a bzImage (as MakePvhElf and
// MakeBzImage of tests/unit/boot/test_images.h build them) and a System.map.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "vmm/formats/kernel/kernel_image.h"
#include "vmm/vm/boot/boot_params.h"
#include "vmm/vm/boot/elf_symbols.h"

namespace {

void CheckImage(const vmm::boot::KernelImage& image, size_t size) {
  for (const auto& s : image.segments) {
    if (s.file_offset > size || s.file_size > size - s.file_offset) std::abort();
    if (s.file_size > s.mem_size) std::abort();
    if (image.elf_class == 32 && s.gpa + s.mem_size > (1ull << 32)) std::abort();
  }
  if (image.lowest_gpa > image.highest_gpa) std::abort();
  (void)vmm::boot::FormatName(image);
  if (image.protocol == vmm::boot::BootProtocol::kLinux64) {
    vmm::boot::BootInfo info;
    auto page = vmm::boot::BuildZeroPage(image, info);
    if (!page || page->size() != 4096) std::abort();
    return;
  }
  if (image.entry < image.lowest_gpa || image.entry >= image.highest_gpa) std::abort();
  std::vector<vmm::boot::LoadSegment> segs = image.segments;
  std::sort(segs.begin(), segs.end(), [](const auto& a, const auto& b) { return a.gpa < b.gpa; });
  for (size_t i = 1; i < segs.size(); ++i) {
    if (segs[i].gpa < segs[i - 1].gpa + segs[i - 1].mem_size) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> file(data, size);
  auto syms = vmm::boot::ReadSymbols(file);
  if (syms) (void)syms->Describe(0xffffffff81000000ull);
  auto image = vmm::boot::ParseKernelImage(file);
  if (image) CheckImage(*image, size);
  // The same bytes under the other ELF class: an ELF64 seed's mutations reach the ELF32
  // parser and the other way round.
  if (size > 4 && data[0] == 0x7f && data[1] == 'E' && data[2] == 'L' && data[3] == 'F') {
    std::vector<uint8_t> other(data, data + size);
    other[4] = other[4] == 1 ? 2 : 1;
    auto flipped = vmm::boot::ParsePvhElf(other);
    if (flipped) CheckImage(*flipped, size);
  }
  return 0;
}
