// Conversions between the KVM ioctl structs and VcpuState / Exception.
//
//   VcpuState s = FromKvm(regs, sregs);  LoadFpuFields(xsave, s);
//   ... Emulate(...) ...
//   StoreToKvm(s, regs, sregs);   // then KVM_SET_REGS, KVM_SET_SREGS
//
// Only what the completer reads is taken, and only what it may change is written back
// (GPRs, RIP, RFLAGS, CR2), so a round trip leaves every other field as KVM reported it.
#pragma once

#include <linux/kvm.h>

#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"

namespace vmm::compat::pvm {

// CPL is SS.DPL, as KVM itself reports it on VMX and SVM (SDM Vol. 3A §5.5: CPL is also
// the DPL of the stack segment). phys_addr_bits and the FPU fields keep their defaults.
VcpuState FromKvm(const kvm_regs& regs, const kvm_sregs& sregs);

// Writes GPRs, RIP, RFLAGS into `regs` and CR2 into `sregs`; the rest is left alone.
void StoreToKvm(const VcpuState& state, kvm_regs& regs, kvm_sregs& sregs);

// MXCSR, its mask and the x87 status word from KVM_GET_XSAVE; StoreMxcsr puts ldmxcsr's
// result back for KVM_SET_XSAVE. Not KVM_GET_FPU/KVM_SET_FPU: KVM leaves kvm_fpu's mxcsr
// alone in both directions (measured on kvm_pvm and nested SVM: 0 read, writes lost).
void LoadFpuFields(const kvm_xsave& xsave, VcpuState& state);
void StoreMxcsr(const VcpuState& state, kvm_xsave& xsave);

// Fills the exception part of `events` (for KVM_SET_VCPU_EVENTS) as an injected event.
// Without KVM_CAP_EXCEPTION_PAYLOAD the CR2 of a #PF travels in sregs (StoreToKvm) and the
// DR6 of a #DB through KVM_SET_DEBUGREGS.
void SetInjectedException(const Exception& e, kvm_vcpu_events& events);

}  // namespace vmm::compat::pvm
