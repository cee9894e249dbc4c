// The data a kernel finds at its entry: the PVH hvm_start_info (Xen's
// public/arch-x86/hvm/start_info.h, version 1) or the Linux zero page (struct boot_params,
// Documentation/arch/x86/zero-page.rst). Pure builders: bytes out, no guest memory.
//
//   std::vector<uint8_t> si = BuildPvhStartInfo(info);   // copy to layout.h's kPvhStartInfoAddr
//   ASSIGN_OR_RETURN(auto zp, BuildZeroPage(image, info));
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/formats/kernel/kernel_image.h"
#include "vmm/vm/arch/x86_64/e820.h"

namespace vmm::boot {

struct BootInfo {
  std::vector<x86::E820Entry> memory_map;
  uint64_t cmdline_gpa = 0;
  uint32_t cmdline_len = 0;  // excluding the NUL
  uint64_t initrd_gpa = 0;
  uint64_t initrd_size = 0;  // 0: no initrd
  uint64_t rsdp_gpa = 0;
};

inline constexpr uint32_t kPvhStartInfoMagic = 0x336ec578;

// start_info at `base`; the module list (initrd) and the memory map follow at fixed offsets
// (layout.h). Fails if the map has more entries than fit.
Result<std::vector<uint8_t>> BuildPvhStartInfo(const BootInfo& info, uint64_t base);
// Byte offset, inside the blob, of the module list and of the memory map.
inline constexpr uint64_t kPvhModlistOffset = 0x40;

// A 4 KiB boot_params for a bzImage entered through the 64-bit protocol.
Result<std::vector<uint8_t>> BuildZeroPage(const KernelImage& image, const BootInfo& info);

}  // namespace vmm::boot
