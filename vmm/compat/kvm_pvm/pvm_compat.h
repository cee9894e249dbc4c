// The kvm_pvm compatibility module of the vCPU role (DESIGN.md §6): the KVM plumbing around
// the pure decoder/emulator of this folder. It completes in user space the instructions
// kvm_pvm's in-kernel emulator gives up on, and catches the guest's LSTAR with an MSR filter.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<PvmCompat> compat, PvmCompat::Enable(vm, cpus));
//   on KVM_EXIT_INTERNAL_ERROR:  RETURN_IF_ERROR(compat->CompleteEmulationFailure(vcpu, ram));
//
// Active when the host's KVM is kvm_pvm, or when forced with `--kvm-compat on`; off on
// VMX/SVM hosts, where KVM needs none of it. Everything it reads (instruction bytes, page
// tables, operands) is guest-controlled and goes through bounds-checked GuestMemoryAccess.
//
// Not done: the SYSCALL fix-up itself (pointing LSTAR at an address whose fetch exits, then
// loading CS/SS from STAR). It needs a kvm_pvm host to be checked against, and this
// project's CI host has none (its kernel is itself a kvm_pvm guest). The MSR filter that
// catches the guest's LSTAR is in place; the guest's value is written through unchanged.
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm/common/result.h"
#include "vmm/compat/kvm_pvm/guest_access.h"
#include "vmm/compat/kvm_pvm/vcpu_state.h"
#include "vmm/kvm/kvm.h"
#include "vmm/manager/config.h"

namespace vmm::compat::pvm {

// Whether the module runs: `on`/`off` as forced, `auto` when the host's KVM is kvm_pvm.
bool Active(KvmCompat setting, kvm::KvmFlavor flavor);

// The kernel parameters it adds to the guest's command line: kernel_parameters.h.

// The instruction a KVM emulation-failure exit stopped on, for the error a user reads:
// "popcnt (f3 48 0f b8 c3) at rip 0x..." or "unsupported instruction 0f 0b at rip 0x...".
// Takes the bytes from the exit when KVM supplied them, else reads them at CS:RIP.
std::string DescribeFailedInstruction(kvm::KvmVcpu& vcpu, GuestMemoryAccess& mem);

class PvmCompat {
 public:
  // Turns on what the module needs from KVM: exits (with the instruction bytes) on every
  // emulation failure when KVM offers it, and user-space exits for reads and writes of
  // IA32_LSTAR. Errors when KVM lacks KVM_CAP_X86_USER_SPACE_MSR or the MSR filter.
  static Result<std::unique_ptr<PvmCompat>> Enable(kvm::KvmVm& vm, uint32_t num_vcpus);

  // KVM_EXIT_INTERNAL_ERROR with suberror KVM_INTERNAL_ERROR_EMULATION: completes the
  // instruction (or injects the exception the CPU would have raised) and lets the vCPU
  // resume. An Error names the instruction and why it cannot be completed: stop the VM.
  // Called only from the thread that runs `vcpu`.
  Result<void> CompleteEmulationFailure(kvm::KvmVcpu& vcpu, GuestMemoryAccess& mem);

  // KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR for a filtered MSR (only IA32_LSTAR is).
  Result<void> HandleMsrExit(kvm::KvmVcpu& vcpu);

  // "kvm_pvm compatibility: 12 instructions completed, 3 exceptions injected, 1 LSTAR write"
  std::string Summary() const;

 private:
  explicit PvmCompat(uint32_t num_vcpus) : guest_lstar_(num_vcpus, 0) {}
  Result<void> Inject(kvm::KvmVcpu& vcpu, const Exception& e);

  // Per vCPU, each element touched only by that vCPU's thread.
  std::vector<uint64_t> guest_lstar_;
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> injected_{0};
  std::atomic<uint64_t> lstar_writes_{0};
};

inline constexpr uint32_t kMsrLstar = 0xC0000082;  // IA32_LSTAR (SDM Vol. 4 Table 2-2)

}  // namespace vmm::compat::pvm
