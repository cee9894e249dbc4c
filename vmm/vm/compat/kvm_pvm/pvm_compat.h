// The kvm_pvm compatibility module of the vCPU role (ARCHITECTURE.md §5): the KVM plumbing around
// the pure decoder/emulator of this folder. It completes in user space the instructions
// kvm_pvm's in-kernel emulator gives up on, and catches the guest's LSTAR with an MSR filter.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<PvmCompat> compat, PvmCompat::Enable(vm, cpus));
//   on KVM_EXIT_INTERNAL_ERROR:  RETURN_IF_ERROR(compat->CompleteEmulationFailure(vcpu, ram));
//
// Active when the host's KVM is kvm_pvm, or when forced with `--kvm-compat on`; off on
// VMX/SVM hosts, where KVM needs none of it. Everything it reads (instruction bytes, page
// tables, operands) is guest-controlled and goes through the bounds-checked GuestRam.
//
// SYSCALL from guest user mode (ARCHITECTURE.md §5: kvm_pvm reaches LSTAR at CPL 3, so the
// kernel's entry code faults). The MSR filter catches the guest's LSTAR write and the
// module picks one of two triggers that stop the vCPU where SYSCALL lands:
//  - redirect: where the guest maps the emulation window's first page (kSyscallRedirect,
//    emulation_window.h) at its identity address for execution, the real LSTAR points
//    there; its fetch fails in KVM, and the module completes the landing (syscall_fixup.h)
//    and continues at the guest's LSTAR. The test guest maps it; this is what the test
//    command drives on every KVM, nested ones included.
//  - breakpoint: otherwise (a stock Linux kernel maps no executable address to a
//    guest-physical page without a memslot: its direct map is NX, its text mapping covers
//    only the image), a hardware instruction breakpoint (KVM_SET_GUEST_DEBUG, DR0) at the
//    guest's LSTAR, whose hits exit as KVM_EXIT_DEBUG. The guest's own debug registers
//    stop taking effect while it is armed (KVM owns DR0-3/DR7 under guest debugging);
//    #DB exits that are not the breakpoint go back to the guest as #DB, without DR6.
//    QEMU's TCG does not raise DR7 breakpoints inside a nested SVM guest, so the CI host
//    cannot observe this trigger; a real kvm_pvm or VMX/SVM host can.
// Either way RDMSR of LSTAR returns the guest's own value. At CPL 0 (VMX/SVM) a landing
// needs no change; at CPL 3 (kvm_pvm) CS and SS are loaded from STAR.
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "vmm/contract/vm_spec.h"
#include "vmm/vm/compat/kvm_pvm/guest_access.h"
#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"
#include "vmm/vm/kvm/kvm.h"

namespace vmm::compat::pvm {

// Whether the module runs: `on`/`off` as forced, `auto` when the host's KVM is kvm_pvm.
bool Active(KvmCompat setting, kvm::KvmFlavor flavor);

// The kernel parameters it adds to the guest's command line: kernel_parameters.h.

// The instruction a KVM emulation-failure exit stopped on, for the error a user reads:
// "popcnt (f3 48 0f b8 c3) at rip 0x..." or "unsupported instruction 0f 0b at rip 0x...".
// Takes the bytes from the exit when KVM supplied them, else reads them at CS:RIP.
std::string DescribeFailedInstruction(kvm::KvmVcpu& vcpu, const GuestRam& mem);

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
  Result<void> CompleteEmulationFailure(kvm::KvmVcpu& vcpu, const GuestRam& mem);

  // KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR for a filtered MSR (only IA32_LSTAR is). A
  // write also moves this vCPU's SYSCALL breakpoint to the new LSTAR.
  Result<void> HandleMsrExit(kvm::KvmVcpu& vcpu, const GuestRam& mem);

  // KVM_EXIT_DEBUG: the breakpoint at the guest's LSTAR (a SYSCALL landing: completed or
  // fixed up, then resumed with RFLAGS.RF so it does not hit again), or a #DB of the
  // guest's own, injected back. Called only from the thread that runs `vcpu`.
  Result<void> HandleDebugExit(kvm::KvmVcpu& vcpu);

  // "kvm_pvm compatibility: 12 instructions completed, 3 exceptions injected, 1 LSTAR
  // writes, 5 SYSCALL landings (4 completed by the CPU, 1 fixed up, 0 of them caught at the
  // page-fault entry), 0 guest #DB passed on"
  std::string Summary() const;

 private:
  explicit PvmCompat(uint32_t num_vcpus)
      : guest_lstar_(num_vcpus, 0), redirected_(num_vcpus, 0), fault_trigger_(num_vcpus, 0) {}
  Result<void> Inject(kvm::KvmVcpu& vcpu, const Exception& e);
  Result<void> ArmSyscallBreakpoint(kvm::KvmVcpu& vcpu, uint64_t lstar);
  // A SYSCALL landing (either trigger): the fix-up, counted; registers written by the caller
  // (KVM_SET_SREGS here when it changed them).
  Result<void> CompleteLanding(kvm::KvmVcpu& vcpu, kvm_regs& regs, kvm_sregs& sregs);
  // The page-fault trigger (syscall_fixup.h): at a CLAC the emulator gave up on, whether it
  // is the #PF entry of a fetch fault at LSTAR from user mode; if so, the landing is fixed
  // up and the vCPU continues at LSTAR at CPL 0 (true).
  Result<bool> CatchFaultedLanding(kvm::KvmVcpu& vcpu, const VcpuState& s, kvm_regs& regs,
                                   kvm_sregs& sregs, const GuestRam& mem);

  // Per vCPU, each element touched only by that vCPU's thread.
  std::vector<uint64_t> guest_lstar_;
  std::vector<uint8_t> redirected_;  // 1: the redirect trigger (bytes, not vector<bool>)
  // 1: this vCPU's landings arrive as page faults (the page-fault trigger caught one), so its
  // breakpoint is off: it never fires at CPL 3 there, and at CPL 0, where the fix-up resumes
  // the vCPU at LSTAR, a host that ignores RF would hit it again forever (measured on kvm_pvm).
  std::vector<uint8_t> fault_trigger_;
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> injected_{0};
  std::atomic<uint64_t> lstar_writes_{0};
  std::atomic<uint64_t> syscalls_by_cpu_{0};
  std::atomic<uint64_t> syscalls_fixed_up_{0};
  std::atomic<uint64_t> guest_debug_passed_on_{0};
  std::atomic<uint64_t> faulted_landings_{0};  // of the fixed-up ones: by the page-fault trigger
};

inline constexpr uint32_t kMsrLstar = 0xC0000082;  // IA32_LSTAR (SDM Vol. 4 Table 2-2)
// The redirect trigger's LSTAR: the emulation window's first page, at its identity address
// (x86::kCompatWindowAddr; the guest's instruction tests use the end of the page).
inline constexpr uint64_t kSyscallRedirect = 0xD0000;

}  // namespace vmm::compat::pvm
