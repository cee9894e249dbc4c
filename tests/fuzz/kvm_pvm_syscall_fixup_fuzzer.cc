// The kvm_pvm SYSCALL fix-up (vmm/vm/compat/kvm_pvm/syscall_fixup.h) on guest-controlled state:
// every register, segment and control register a guest can reach, and STAR/FMASK as it
// wrote them.
//
// Invariants: a landing completed by the CPU, or a refused one, changes nothing; a fixed-up
// one leaves CPL 0 with CS.L set, SS = CS + 8, FMASK's bits and RF clear in RFLAGS, bit 1
// set, and every general-purpose register (the return context in RCX/R11 included), RIP
// and the control registers as they were.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tests/fuzz/fuzz_check.h"
#include "vmm/vm/compat/kvm_pvm/syscall_fixup.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmm::compat::pvm;  // NOLINT: a fuzzer
  kvm_regs regs{};
  kvm_sregs sregs{};
  SyscallMsrs msrs{};
  if (size < sizeof(regs) + sizeof(sregs) + sizeof(msrs)) return 0;
  std::memcpy(&regs, data, sizeof(regs));
  std::memcpy(&sregs, data + sizeof(regs), sizeof(sregs));
  std::memcpy(&msrs, data + sizeof(regs) + sizeof(sregs), sizeof(msrs));
  const kvm_regs regs_in = regs;
  const kvm_sregs sregs_in = sregs;

  // The page-fault trigger: a frame and the addresses around it, all the guest's. A frame
  // taken for a landing puts the vCPU at LSTAR at CPL 3 with the frame's stack, from which
  // the fix-up either completes or refuses the state; never "completed by the CPU".
  const size_t base = sizeof(regs) + sizeof(sregs) + sizeof(msrs);
  uint64_t extra[10] = {};
  if (size >= base + sizeof(extra)) {
    std::memcpy(extra, data + base, sizeof(extra));
    const ExceptionFrame frame{extra[0], extra[1], extra[2], extra[3], extra[4], extra[5]};
    const uint64_t lstar = extra[6], rip = extra[7], handler = extra[8], cr2 = extra[9];
    if (IsFaultedSyscallLanding(lstar, rip, handler, cr2, frame)) {
      CHECK(frame.rip == lstar && cr2 == lstar && rip - handler <= kMaxGateToClacBytes);
      kvm_regs fr = regs;
      kvm_sregs fs = sregs;
      RestoreLanding(frame, fr, fs);
      CHECK(fr.rip == lstar && fr.rsp == frame.rsp && fs.cs.dpl == 3 && fs.ss.dpl == 3);
      auto landed = CompleteSyscallLanding(msrs, fr, fs);
      CHECK(!landed || *landed == SyscallLanding::kFixedUp);
    }
  }

  auto r = CompleteSyscallLanding(msrs, regs, sregs);
  if (!r || *r == SyscallLanding::kCompletedByCpu) {
    CHECK(std::memcmp(&regs, &regs_in, sizeof(regs)) == 0);
    CHECK(std::memcmp(&sregs, &sregs_in, sizeof(sregs)) == 0);
    return 0;
  }
  CHECK(sregs.cs.dpl == 0 && sregs.ss.dpl == 0 && (sregs.cs.selector & 3) == 0);
  CHECK(sregs.cs.l == 1 && sregs.cs.present == 1 && sregs.ss.present == 1);
  CHECK(sregs.ss.selector ==
        static_cast<uint16_t>(sregs.cs.selector + 8));  // 16-bit, as the CPU adds
  CHECK((regs.rflags & msrs.fmask & ~2ull) == 0);       // bit 1 reads as 1 whatever FMASK says
  CHECK((regs.rflags & (1ull << 16)) == 0 && (regs.rflags & 2) == 2);
  kvm_regs others = regs;
  others.rflags = regs_in.rflags;
  CHECK(std::memcmp(&others, &regs_in, sizeof(regs)) == 0);
  CHECK(sregs.cr0 == sregs_in.cr0 && sregs.cr3 == sregs_in.cr3 && sregs.cr4 == sregs_in.cr4 &&
        sregs.efer == sregs_in.efer);
  return 0;
}
