// Guest-physical memory as the kvm_pvm completer sees it: the one GuestRam
// (base/guest_ram.h), host bytes behind a GPA, or nothing. Page-table reads, operand
// reads and writes all go through it (page_walk.h and linear_memory.h are the layers on
// top), and every byte moved between guest RAM and the VMM goes through the copy helpers
// below.
//
//   const GuestRam& ram = guest_memory.ram();      // borrowed; guest_memory outlives it
//   std::span<uint8_t> pte = ram.Translate(gpa, 8);  // empty when [gpa, gpa+8) is not RAM
//
// Callers never ask for more than one 4 KiB page, so RAM regions (page-aligned) never
// split one. Tests and the fuzzer use FakeGuestRam (base/fake_guest_ram.h).
#pragma once

#include <cstdint>
#include <span>

#include "base/guest_ram.h"
#include "base/result.h"
#include "vmm/vm/memory/guest_memory.h"

namespace vmm::compat::pvm {

// Copies between guest RAM and VMM buffers (same sizes). Other vCPUs keep running while
// we emulate, so a piece of 2, 4 or 8 bytes at a naturally aligned host address moves with
// one atomic access: the guest never sees it torn, as SDM Vol. 3A §9.1.1 promises for the
// CPU's own aligned accesses. Anything else is copied bytewise, which the CPU does not
// promise to do atomically either.
void CopyFromGuest(std::span<const uint8_t> guest, std::span<uint8_t> out);
void CopyToGuest(std::span<uint8_t> guest, std::span<const uint8_t> in);

// One load or compare-exchange of a 4- or 8-byte naturally aligned paging-structure entry
// (the CPU updates A/D bits with locked operations: SDM Vol. 3A §4.8). Errors: wrong size
// or a misaligned host address.
Result<uint64_t> LoadEntry(std::span<const uint8_t> guest);
Result<bool> CompareExchangeEntry(std::span<uint8_t> guest, uint64_t expected, uint64_t desired);

// LOCK CMPXCHG16B on 16 aligned host bytes of guest RAM (SDM Vol. 2A "CMPXCHG8B/
// CMPXCHG16B"). The real instruction is used because nothing else is atomic with respect to
// vCPUs running guest code natively: a VMM-side lock would only exclude other emulated
// accesses, so there is no lock-based fallback. A host without CX16 gets an error (kvm_pvm
// runs the guest on the host CPU, which then cannot have run cmpxchg16b either).
struct Cmpxchg16Result {
  bool swapped = false;  // memory held `expected` and now holds `desired`
  uint64_t old_lo = 0;   // what memory held before (equal to expected when swapped)
  uint64_t old_hi = 0;
};
Result<Cmpxchg16Result> CompareExchange16(std::span<uint8_t> guest, uint64_t expected_lo,
                                          uint64_t expected_hi, uint64_t desired_lo,
                                          uint64_t desired_hi);

}  // namespace vmm::compat::pvm
