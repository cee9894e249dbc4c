// Reads and writes at guest linear addresses, for the completer and its plumbing.
//
//   LinearMemory lm(state, ram);
//   ASSIGN_OR_RETURN(Fault f, lm.Write(linear, bytes));
//   if (f) ...inject *f...                       // #PF / #GP / #SS; nothing was written
//
// An access is split at every 4 KiB boundary and each page is translated on its own. Only
// when every page has translated and resolved to RAM are accessed/dirty bits set and bytes
// moved, so an access that faults on its second page changes nothing (SDM Vol. 3A §6.5:
// a fault is reported before the instruction has any effect). Borrowed references: the
// state and the memory must outlive the LinearMemory.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "vmm/vm/compat/kvm_pvm/guest_access.h"
#include "vmm/vm/compat/kvm_pvm/page_walk.h"
#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"

namespace vmm::compat::pvm {

// 48-bit canonical form, 57-bit with CR4.LA57 (SDM Vol. 1 §3.3.7.1, Vol. 3A §4.5.1).
bool IsCanonical(const VcpuState& state, uint64_t linear);

struct Mapping {
  Fault fault;                             // set: nothing was mapped or marked
  std::vector<std::span<uint8_t>> pieces;  // host bytes of each page's part, in order
};

class LinearMemory {
 public:
  static constexpr uint64_t kMaxAccess = 64 * 1024;  // larger than any XSAVE area

  LinearMemory(const VcpuState& state, const GuestRam& mem) : s_(state), mem_(mem) {}

  // Translates every page of [linear, linear+len) for `access`, sets A/D bits, and returns
  // the host bytes. Outside long mode `linear` is truncated to 32 bits and wraps at 4 GiB.
  // `non_canonical` is the fault for a non-canonical address: #GP(0), or #SS(0) when the
  // address is SS-relative (SDM Vol. 3A §6.15, "Interrupt 12"). Errors: a page or a
  // paging structure outside RAM, len above kMaxAccess, page tables that keep changing.
  Result<Mapping> Map(uint64_t linear, uint64_t len, AccessType access,
                      Vector non_canonical = Vector::kGp);

  Result<Fault> Read(uint64_t linear, std::span<uint8_t> out, AccessType access = AccessType::kRead,
                     Vector non_canonical = Vector::kGp);
  Result<Fault> Write(uint64_t linear, std::span<const uint8_t> in,
                      Vector non_canonical = Vector::kGp);

 private:
  const VcpuState& s_;
  const GuestRam& mem_;
};

// Copies between the pieces of a Mapping and a flat buffer of the same total size.
void ReadMapped(const Mapping& m, std::span<uint8_t> out);
void WriteMapped(const Mapping& m, std::span<const uint8_t> in);

// Up to 15 bytes at CS:RIP with instruction-fetch permission, for when the exit did not
// carry the instruction bytes. A fault on the first byte gives size 0 and the fault; a
// fault on a later page gives the bytes before it and the fault, which the plumbing injects
// only if Decode() reports the instruction truncated. A later page outside RAM just ends
// the bytes.
struct FetchedInstruction {
  std::array<uint8_t, 15> bytes{};
  uint8_t size = 0;
  Fault fault;
};
Result<FetchedInstruction> FetchInstruction(const VcpuState& state, const GuestRam& mem);

}  // namespace vmm::compat::pvm
