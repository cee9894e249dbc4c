// Completes one decoded instruction against the vCPU state and guest memory, the way the
// CPU would have, or says which exception the guest must get instead.
//
//   ASSIGN_OR_RETURN(Outcome out, Emulate(insn, state, ram));   // Error: VMM-side problem
//   switch (out.kind) {
//     case Outcome::Kind::kCompleted: break;                     // write state back, resume
//     case Outcome::Kind::kException: inject(out.exception); break;
//     case Outcome::Kind::kNeedsFpuState: ...xsave family, see below...
//   }
//   if (out.mxcsr_written) ...put state.mxcsr into the FPU state...
//
// State contract: on kCompleted the instruction's effects are in `state` and guest memory,
// RIP points past it and RFLAGS.RF is clear (SDM Vol. 3A §17.3.1.1). On kException with a
// fault, nothing changed except state.cr2 for a #PF (so writing sregs back delivers CR2
// with KVM_SET_VCPU_EVENTS), and possibly accessed/dirty bits of paging entries for a
// fault found after the walk (#AC, ldmxcsr's #GP), as on the CPU. Two exceptions are
// traps, reported after the instruction completed: #BP from int3, and #DB (DR6.BS) when
// RFLAGS.TF was set (SDM Vol. 3A §17.3.1.4).
//
// Errors (Result's error side, for the plumbing to log and stop on): an operand or a page
// table outside guest RAM (the CPU would have touched MMIO, which we do not emulate), page
// tables that keep changing, or a host without CMPXCHG16B. Nothing is written then either.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "vmm/vm/compat/kvm_pvm/decoder.h"
#include "vmm/vm/compat/kvm_pvm/guest_access.h"
#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"

namespace vmm::compat::pvm {

struct Outcome {
  enum class Kind : uint8_t {
    kCompleted,  // resume the vCPU
    kException,  // inject `exception`
    // xsave/xrstor/xsaveopt passed every check that needs no XSAVE state (#UD for
    // CR4.OSXSAVE=0, #NM for CR0.TS, canonical form, 64-byte alignment); the plumbing
    // performs it at `fpu_linear` (LinearMemory does the page walks) or refuses. RIP is
    // not advanced.
    kNeedsFpuState,
  };
  Kind kind = Kind::kCompleted;
  Exception exception;         // kException
  bool mxcsr_written = false;  // ldmxcsr completed: state.mxcsr is the guest's new MXCSR
  uint64_t fpu_linear = 0;     // kNeedsFpuState: the operand's linear address
  bool operator==(const Outcome&) const = default;
};

Result<Outcome> Emulate(const Decoded& insn, VcpuState& state, const GuestRam& mem);

}  // namespace vmm::compat::pvm
