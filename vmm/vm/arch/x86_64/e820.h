// The guest's physical memory map (e820 types), derived from the RAM size and layout.h.
//
//   std::vector<E820Entry> map = BuildMemoryMap(mem.regions());
//   uint64_t low_end = LowRamEnd(map);   // where the kernel, initrd and command line may go
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/vm/memory/guest_memory.h"

namespace vmm::x86 {

enum E820Type : uint32_t { kE820Ram = 1, kE820Reserved = 2, kE820Acpi = 3 };

struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};

std::vector<E820Entry> BuildMemoryMap(const std::vector<MemoryRegion>& ram);
// End of the RAM region that starts at 1 MiB (exclusive).
uint64_t LowRamEnd(const std::vector<E820Entry>& map);

}  // namespace vmm::x86
