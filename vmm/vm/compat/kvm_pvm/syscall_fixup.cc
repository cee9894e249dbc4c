#include "vmm/vm/compat/kvm_pvm/syscall_fixup.h"

#include <cinttypes>
#include <cstdio>

#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"

namespace vmm::compat::pvm {
namespace {

constexpr uint64_t kEferSce = 1ull << 0;  // SDM Vol. 3A §2.2.1: SYSCALL enable
constexpr uint64_t kRflagsFixed = 1ull << 1;

// Flat segments as SYSCALL loads them (SDM Vol. 2B "SYSCALL", Operation): base 0, limit
// 4 GiB with G=1, present, S=1; CS execute/read accessed (type 11) with L=1, D=0; SS
// read/write accessed (type 3) with D/B=1.
kvm_segment FlatSegment(uint16_t selector, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xFFFFFFFF;
  s.selector = selector;
  s.type = code ? 11 : 3;
  s.present = 1;
  s.dpl = 0;
  s.db = code ? 0 : 1;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  s.avl = 0;
  s.unusable = 0;
  return s;
}

}  // namespace

Result<SyscallLanding> CompleteSyscallLanding(const SyscallMsrs& msrs, kvm_regs& regs,
                                              kvm_sregs& sregs) {
  // CPL is SS.DPL on VMX and SVM (kvm_state.h); CS.RPL agrees after a real SYSCALL.
  const bool cpl0 = sregs.ss.dpl == 0 && (sregs.cs.selector & 3) == 0;
  if (cpl0) return SyscallLanding::kCompletedByCpu;
  if ((sregs.efer & efer::kLma) == 0) {
    return Error(ErrorKind::kGuest,
                 "SYSCALL fix-up: the vCPU is at the guest's LSTAR at CPL 3 outside long mode");
  }
  if ((sregs.efer & kEferSce) == 0) {
    return Error(ErrorKind::kGuest,
                 "SYSCALL fix-up: the vCPU is at the guest's LSTAR at CPL 3 with EFER.SCE "
                 "clear (no SYSCALL can have brought it there)");
  }
  const uint16_t kernel_cs = static_cast<uint16_t>((msrs.star >> 32) & 0xFFFC);
  if (kernel_cs == 0) {
    char buf[96];
    std::snprintf(buf, sizeof(buf),
                  "SYSCALL fix-up: IA32_STAR 0x%016" PRIx64
                  " names the null selector for the kernel CS",
                  msrs.star);
    return Error(ErrorKind::kGuest, buf);
  }
  sregs.cs = FlatSegment(kernel_cs, /*code=*/true);
  sregs.ss = FlatSegment(static_cast<uint16_t>(kernel_cs + 8), /*code=*/false);
  regs.rflags = (regs.rflags & ~msrs.fmask & ~rflags::kRf) | kRflagsFixed;
  return SyscallLanding::kFixedUp;
}

bool IsFaultedSyscallLanding(uint64_t lstar, uint64_t rip, uint64_t pf_handler, uint64_t cr2,
                             const ExceptionFrame& frame) {
  if (lstar == 0 || rip < pf_handler || rip - pf_handler > kMaxGateToClacBytes) return false;
  // Raised at CPL 3 (the frame's CS.RPL; a fault from ring 0 pushes the kernel's CS), by the
  // fetch at LSTAR itself, in user mode.
  return frame.rip == lstar && cr2 == lstar && (frame.cs & 3) == 3 && (frame.ss & 3) == 3 &&
         (frame.error_code & kPfErrorUser) != 0;
}

void RestoreLanding(const ExceptionFrame& frame, kvm_regs& regs, kvm_sregs& sregs) {
  regs.rip = frame.rip;
  regs.rsp = frame.rsp;
  regs.rflags = frame.rflags;
  sregs.cs = FlatSegment(static_cast<uint16_t>(frame.cs), /*code=*/true);
  sregs.ss = FlatSegment(static_cast<uint16_t>(frame.ss), /*code=*/false);
  sregs.cs.dpl = 3;
  sregs.ss.dpl = 3;
}

}  // namespace vmm::compat::pvm
