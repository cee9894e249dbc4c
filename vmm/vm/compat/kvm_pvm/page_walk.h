// Guest-virtual to guest-physical translation through the guest's own page tables, the way
// the CPU does it for one access (Intel SDM Vol. 3A chapter 4; AMD APM Vol. 2 chapter 5).
//
//   ASSIGN_OR_RETURN(PageWalk w, Translate(state, ram, linear, AccessType::kWrite));
//   if (w.fault) return Inject(*w.fault);        // #PF with error code and CR2
//   ASSIGN_OR_RETURN(bool fresh, SetAccessedDirty(ram, w));   // false: walk again
//
// Modes, chosen from CR0.PG, CR4.PAE, EFER.LMA and CR4.LA57 (SDM Vol. 3A §4.1.1):
// paging off (identity), 32-bit (4 KiB, and 4 MiB with CR4.PSE and PSE-36), PAE (4 KiB,
// 2 MiB), 4-level and 5-level (4 KiB, 2 MiB, 1 GiB). Checked: present, reserved bits
// (MAXPHYADDR, XD without EFER.NXE, PS where it is reserved, large-page alignment), R/W with
// CR0.WP, U/S with CPL, XD on fetches, SMEP, SMAP with RFLAGS.AC, and protection keys
// (CR4.PKE, PKRU) for user pages. Not modelled: PKS (supervisor keys), shadow stacks, SGX,
// CPUs without 1 GiB pages, and PAE PDPTE caching (PDPTEs are read from memory at each walk
// instead of at MOV CR3, so a bad PDPTE gives #PF(RSVD) here where the CPU gave #GP then).
// All accesses are treated as explicit (the completed instructions touch no system tables).
#pragma once

#include <array>
#include <cstdint>

#include "base/result.h"
#include "vmm/vm/compat/kvm_pvm/guest_access.h"
#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"

namespace vmm::compat::pvm {

enum class AccessType : uint8_t { kRead, kWrite, kFetch };

// A paging-structure entry the walk used, and the A/D bits it must gain (SDM Vol. 3A §4.8).
struct EntryUpdate {
  uint64_t gpa = 0;
  uint64_t seen = 0;  // the value the walk read
  uint64_t set = 0;   // bits to OR in
  uint8_t width = 8;  // 4 for 32-bit paging
};

struct PageWalk {
  Fault fault;             // set: a #PF for the guest, and nothing below is meaningful
  uint64_t gpa = 0;        // the translation of the linear address
  uint64_t page_size = 0;  // 4 KiB .. 1 GiB; 4 KiB with paging off
  std::array<EntryUpdate, 5> updates{};
  uint8_t update_count = 0;
};

// Walks the page tables for one byte's linear address (already truncated to 32 bits
// outside long mode). Reads entries through `mem` and writes nothing. Errors (not guest
// faults): a paging structure that is not guest RAM.
Result<PageWalk> Translate(const VcpuState& state, const GuestRam& mem, uint64_t linear,
                           AccessType access);

// Sets the accessed bits (and the dirty bit of the leaf for a write) that `walk` calls for,
// each with one compare-exchange against the value the walk saw, as the CPU does with a
// locked update. Returns false if some entry changed since the walk: walk again.
Result<bool> SetAccessedDirty(const GuestRam& mem, const PageWalk& walk);

}  // namespace vmm::compat::pvm
