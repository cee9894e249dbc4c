// The SYSCALL fix-up of the kvm_pvm compatibility module (ARCHITECTURE.md §5): on kvm_pvm a
// SYSCALL from guest user mode reaches the guest's IA32_LSTAR but the vCPU stays at CPL 3,
// so the kernel's entry code faults on its first instruction. The module catches the
// landing (pvm_compat.cc: the redirect, an instruction breakpoint at the guest's LSTAR, or
// the page fault that follows) and calls CompleteSyscallLanding, which finishes what
// SYSCALL does to the privilege state.
//
//   SyscallMsrs msrs{star, fmask};
//   ASSIGN_OR_RETURN(SyscallLanding how, CompleteSyscallLanding(msrs, regs, sregs));
//   if (how == SyscallLanding::kFixedUp) { /* KVM_SET_REGS + KVM_SET_SREGS */ }
//
// Pure functions over the KVM structs, so the fix-up is unit-tested without KVM.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "base/result.h"

namespace vmm::compat::pvm {

inline constexpr uint32_t kMsrStar = 0xC0000081;   // IA32_STAR (SDM Vol. 4 Table 2-2)
inline constexpr uint32_t kMsrFmask = 0xC0000084;  // IA32_FMASK ("SFMASK")

struct SyscallMsrs {
  uint64_t star = 0;   // [47:32] kernel CS (SS = CS + 8), [63:48] user selector base
  uint64_t fmask = 0;  // RFLAGS bits SYSCALL clears
};

enum class SyscallLanding {
  // CPL 0 already: the CPU did all of SYSCALL (VMX/SVM, or the module forced on). Nothing
  // to change.
  kCompletedByCpu,
  // CPL 3 at LSTAR (kvm_pvm): CS and SS loaded from STAR, RFLAGS masked by FMASK.
  kFixedUp,
};

// Completes SYSCALL's privilege change for a vCPU stopped at the guest's LSTAR.
//
// SYSCALL (SDM Vol. 2B "SYSCALL") does two things: the register part (RCX <- next RIP,
// R11 <- RFLAGS, RIP <- LSTAR, RFLAGS <- RFLAGS & ~FMASK) and the privilege part
// (CS <- STAR[47:32] & ~3 as a flat 64-bit DPL 0 code segment, SS <- that + 8 as a flat
// writable DPL 0 data segment, CPL <- 0). kvm_pvm delivers the guest there with RIP at
// LSTAR at CPL 3; the return address it left in RCX and the flags in R11 are the user
// context's and are kept as they are, since after the transfer nothing else holds them.
// RFLAGS is masked again (idempotent when kvm_pvm already masked it) and RF cleared.
//
// Errors when the state cannot be one SYSCALL produced: not in long mode, EFER.SCE clear
// (SYSCALL raises #UD then), or a STAR whose kernel selector is the null selector.
Result<SyscallLanding> CompleteSyscallLanding(const SyscallMsrs& msrs, kvm_regs& regs,
                                              kvm_sregs& sregs);

// The page-fault trigger (ARCHITECTURE.md §5), for hosts where the breakpoint never fires:
// at CPL 3 the fetch at the guest's LSTAR (a supervisor page) faults, KVM delivers that
// #PF to the guest, and the first instruction of a Linux exception entry that kvm_pvm's
// emulator gives up on is its CLAC (SMAP). There the stack holds the #PF's frame, which
// still describes the landing: RIP at LSTAR, user CS and SS, the user's RSP and RFLAGS.
struct ExceptionFrame {  // as the CPU pushes it with an error code (SDM Vol. 3A §6.14.1)
  uint64_t error_code = 0, rip = 0, cs = 0, rflags = 0, rsp = 0, ss = 0;
};
inline constexpr uint64_t kPfErrorUser = 1u << 2;   // SDM Vol. 3A §4.7: U/S
inline constexpr uint64_t kMaxGateToClacBytes = 8;  // ENDBR64 (4 bytes) before the CLAC

// True when a vCPU stopped at `rip` (an instruction at most kMaxGateToClacBytes past the
// #PF gate's handler `pf_handler`) with `frame` on its stack and `cr2` is in the entry of a
// page fault that a user-mode fetch at the guest's LSTAR raised: a SYSCALL landing.
bool IsFaultedSyscallLanding(uint64_t lstar, uint64_t rip, uint64_t pf_handler, uint64_t cr2,
                             const ExceptionFrame& frame);

// Puts the vCPU back where the landing left it, as the frame records: RIP, RSP and RFLAGS,
// and CS/SS as flat user segments at CPL 3 with the frame's selectors. CompleteSyscallLanding
// then finishes the SYSCALL from there.
void RestoreLanding(const ExceptionFrame& frame, kvm_regs& regs, kvm_sregs& sregs);

}  // namespace vmm::compat::pvm
