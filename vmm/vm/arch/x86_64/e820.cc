#include "vmm/vm/arch/x86_64/e820.h"

#include "vmm/contract/layout.h"

namespace vmm::x86 {

std::vector<E820Entry> BuildMemoryMap(const std::vector<MemoryRegion>& ram) {
  std::vector<E820Entry> map;
  for (const MemoryRegion& r : ram) {
    if (r.guest_phys == 0) {
      // Conventional memory, then the EBDA/VGA/BIOS hole that legacy software expects and
      // where our ACPI tables live, then extended memory.
      map.push_back({0, kEbdaStart, kE820Ram});
      map.push_back({kEbdaStart, kHighMemStart - kEbdaStart, kE820Reserved});
      if (r.size > kHighMemStart) map.push_back({kHighMemStart, r.size - kHighMemStart, kE820Ram});
    } else {
      map.push_back({r.guest_phys, r.size, kE820Ram});
    }
  }
  return map;
}

uint64_t LowRamEnd(const std::vector<E820Entry>& map) {
  for (const E820Entry& e : map) {
    if (e.type == kE820Ram && e.addr == kHighMemStart) return e.addr + e.size;
  }
  return kHighMemStart;
}

}  // namespace vmm::x86
