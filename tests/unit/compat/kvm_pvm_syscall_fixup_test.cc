// The SYSCALL fix-up (vmm/vm/compat/kvm_pvm/syscall_fixup.h) as pure code: what a vCPU that
// kvm_pvm left at the guest's LSTAR at CPL 3 looks like after it, and what stays alone.
#include "vmm/vm/compat/kvm_pvm/syscall_fixup.h"

#include <gtest/gtest.h>

namespace vmm::compat::pvm {
namespace {

constexpr uint64_t kLinuxStar = 0x0023001000000000;  // user base 0x23 (SYSRET), kernel CS 0x10
constexpr uint64_t kLinuxFmask = 0x47700;            // TF DF IF IOPL NT AC
constexpr uint64_t kEferLongModeSce = (1u << 10) | (1u << 8) | (1u << 0);

kvm_segment UserSegment(uint16_t selector, bool code) {
  kvm_segment s{};
  s.selector = selector;
  s.limit = 0xFFFFFFFF;
  s.type = code ? 11 : 3;
  s.present = 1;
  s.dpl = 3;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.db = code ? 0 : 1;
  s.g = 1;
  return s;
}

struct Landing {
  kvm_regs regs{};
  kvm_sregs sregs{};
};

// What the vCPU looks like when kvm_pvm has jumped to LSTAR from user mode.
Landing AtLstarInUserMode() {
  Landing l;
  l.regs.rip = 0xFFFFFFFF81C00080;
  l.regs.rcx = 0x401234;  // the user's return address, as SYSCALL saved it
  l.regs.r11 = 0x246;     // the user's RFLAGS
  l.regs.rflags = 0x246 | 0x400 | 0x40000 | 0x10000;  // DF, AC and RF still set
  l.regs.rsp = 0x7FFCC8BFBA00;
  l.sregs.cs = UserSegment(0x33, true);
  l.sregs.ss = UserSegment(0x2B, false);
  l.sregs.efer = kEferLongModeSce;
  l.sregs.cr0 = 0x80050033;
  return l;
}

TEST(SyscallFixup, CplThreeAtLstarGetsTheKernelSegmentsFromStar) {
  Landing l = AtLstarInUserMode();
  auto r = CompleteSyscallLanding({kLinuxStar, kLinuxFmask}, l.regs, l.sregs);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(*r, SyscallLanding::kFixedUp);
  EXPECT_EQ(l.sregs.cs.selector, 0x10);
  EXPECT_EQ(l.sregs.cs.dpl, 0);
  EXPECT_EQ(l.sregs.cs.l, 1);
  EXPECT_EQ(l.sregs.cs.db, 0);
  EXPECT_EQ(l.sregs.cs.type, 11);
  EXPECT_EQ(l.sregs.cs.present, 1);
  EXPECT_EQ(l.sregs.cs.base, 0u);
  EXPECT_EQ(l.sregs.ss.selector, 0x18);
  EXPECT_EQ(l.sregs.ss.dpl, 0);
  EXPECT_EQ(l.sregs.ss.type, 3);
  EXPECT_EQ(l.sregs.ss.db, 1);
}

TEST(SyscallFixup, FlagsAreMaskedByFmaskAndRfCleared) {
  Landing l = AtLstarInUserMode();
  ASSERT_TRUE(CompleteSyscallLanding({kLinuxStar, kLinuxFmask}, l.regs, l.sregs).has_value());
  EXPECT_EQ(l.regs.rflags, 0x046u) << "IF, DF, AC and RF cleared; ZF, PF and bit 1 kept";
}

TEST(SyscallFixup, ReturnContextRipAndStackAreLeftAsTheTransferLeftThem) {
  Landing l = AtLstarInUserMode();
  const kvm_regs before = l.regs;
  ASSERT_TRUE(CompleteSyscallLanding({kLinuxStar, kLinuxFmask}, l.regs, l.sregs).has_value());
  EXPECT_EQ(l.regs.rip, before.rip);
  EXPECT_EQ(l.regs.rcx, before.rcx);
  EXPECT_EQ(l.regs.r11, before.r11);
  EXPECT_EQ(l.regs.rsp, before.rsp) << "SYSCALL does not switch stacks";
  EXPECT_EQ(l.regs.rax, before.rax);
}

TEST(SyscallFixup, StarRplBitsAreIgnoredForTheKernelSelector) {
  Landing l = AtLstarInUserMode();
  ASSERT_TRUE(CompleteSyscallLanding({0x0023001300000000, 0}, l.regs, l.sregs).has_value());
  EXPECT_EQ(l.sregs.cs.selector, 0x10);
  EXPECT_EQ(l.sregs.ss.selector, 0x18);
}

TEST(SyscallFixup, CplZeroMeansTheCpuDidItAllAndNothingChanges) {
  Landing l = AtLstarInUserMode();
  l.sregs.cs = UserSegment(0x10, true);
  l.sregs.cs.dpl = 0;
  l.sregs.ss = UserSegment(0x18, false);
  l.sregs.ss.dpl = 0;
  const Landing before = l;
  auto r = CompleteSyscallLanding({kLinuxStar, kLinuxFmask}, l.regs, l.sregs);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, SyscallLanding::kCompletedByCpu);
  EXPECT_EQ(l.regs.rflags, before.regs.rflags);
  EXPECT_EQ(l.sregs.cs.selector, before.sregs.cs.selector);
  EXPECT_EQ(l.sregs.ss.selector, before.sregs.ss.selector);
}

TEST(SyscallFixup, NoSyscallCanLandWithSceClear) {
  Landing l = AtLstarInUserMode();
  l.sregs.efer &= ~1ull;
  auto r = CompleteSyscallLanding({kLinuxStar, kLinuxFmask}, l.regs, l.sregs);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().ToString().find("EFER.SCE"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(l.sregs.cs.selector, 0x33) << "nothing changed on refusal";
}

TEST(SyscallFixup, OutsideLongModeIsRefused) {
  Landing l = AtLstarInUserMode();
  l.sregs.efer = 1;
  EXPECT_FALSE(CompleteSyscallLanding({kLinuxStar, kLinuxFmask}, l.regs, l.sregs).has_value());
}

TEST(SyscallFixup, ANullKernelSelectorInStarIsRefused) {
  Landing l = AtLstarInUserMode();
  auto r = CompleteSyscallLanding({0x0023000300000000, kLinuxFmask}, l.regs, l.sregs);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().ToString().find("null selector"), std::string::npos) << r.error().ToString();
}

// The page-fault trigger: the #PF a user-mode fetch at LSTAR raised, seen at the CLAC of
// the kernel's #PF entry (the numbers of the Debian guest's first user-mode SYSCALL on a
// kvm_pvm host: "segfault at ffffffff81c00080 ip ffffffff81c00080 sp 00007ffcae06ad20").
constexpr uint64_t kLstar = 0xFFFFFFFF81C00080;
constexpr uint64_t kPfHandler = 0xFFFFFFFF81A00B20;  // asm_exc_page_fault
ExceptionFrame FetchFaultAtLstar() {
  return ExceptionFrame{.error_code = 0x15,  // present, user, instruction fetch
                        .rip = kLstar,
                        .cs = 0x33,
                        .rflags = 0x246,
                        .rsp = 0x7FFCAE06AD20,
                        .ss = 0x2B};
}

TEST(SyscallFixup, AFetchFaultAtLstarFromUserModeIsALanding) {
  const ExceptionFrame f = FetchFaultAtLstar();
  EXPECT_TRUE(IsFaultedSyscallLanding(kLstar, kPfHandler + 4, kPfHandler, kLstar, f));  // ENDBR64
  EXPECT_TRUE(IsFaultedSyscallLanding(kLstar, kPfHandler, kPfHandler, kLstar, f));  // no ENDBR64
}

TEST(SyscallFixup, AnythingElseAtThePageFaultEntryIsNotALanding) {
  const ExceptionFrame f = FetchFaultAtLstar();
  // Another instruction than the entry's first ones, or another gate's handler.
  EXPECT_FALSE(IsFaultedSyscallLanding(kLstar, kPfHandler + 9, kPfHandler, kLstar, f));
  EXPECT_FALSE(IsFaultedSyscallLanding(kLstar, kPfHandler - 1, kPfHandler, kLstar, f));
  // No LSTAR written yet.
  EXPECT_FALSE(IsFaultedSyscallLanding(0, kPfHandler + 4, kPfHandler, kLstar, f));
  // A fault somewhere else, or at another address than the one that faulted.
  ExceptionFrame other = f;
  other.rip = 0x401000;
  EXPECT_FALSE(IsFaultedSyscallLanding(kLstar, kPfHandler + 4, kPfHandler, kLstar, other));
  EXPECT_FALSE(IsFaultedSyscallLanding(kLstar, kPfHandler + 4, kPfHandler, 0x7000, f));
  // The kernel faulting at LSTAR (CS and SS of ring 0), or a supervisor-mode access.
  ExceptionFrame kernel = f;
  kernel.cs = 0x10;
  kernel.ss = 0x18;
  EXPECT_FALSE(IsFaultedSyscallLanding(kLstar, kPfHandler + 4, kPfHandler, kLstar, kernel));
  ExceptionFrame supervisor = f;
  supervisor.error_code = 0x11;
  EXPECT_FALSE(IsFaultedSyscallLanding(kLstar, kPfHandler + 4, kPfHandler, kLstar, supervisor));
}

TEST(SyscallFixup, TheFramesLandingIsFixedUpAsTheLandingItself) {
  Landing at_entry = AtLstarInUserMode();
  // Where the vCPU is when the #PF entry's CLAC stops it: ring 0, the kernel's stack.
  at_entry.regs.rip = kPfHandler + 4;
  at_entry.regs.rsp = 0xFFFFC90000003F58;
  at_entry.regs.rflags = 0x82;
  at_entry.sregs.cs = UserSegment(0x10, true);
  at_entry.sregs.cs.dpl = 0;
  at_entry.sregs.ss = UserSegment(0x18, false);
  at_entry.sregs.ss.dpl = 0;
  const ExceptionFrame f = FetchFaultAtLstar();
  RestoreLanding(f, at_entry.regs, at_entry.sregs);
  EXPECT_EQ(at_entry.regs.rip, kLstar);
  EXPECT_EQ(at_entry.regs.rsp, f.rsp);
  EXPECT_EQ(at_entry.sregs.cs.selector, 0x33);
  EXPECT_EQ(at_entry.sregs.cs.dpl, 3);
  EXPECT_EQ(at_entry.sregs.ss.dpl, 3);
  // From there the fix-up is the landing's: kernel CS/SS from STAR, flags masked; the
  // user's RCX and R11 (SYSCALL's register part) are untouched.
  auto r = CompleteSyscallLanding({kLinuxStar, kLinuxFmask}, at_entry.regs, at_entry.sregs);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(*r, SyscallLanding::kFixedUp);
  EXPECT_EQ(at_entry.sregs.cs.selector, 0x10);
  EXPECT_EQ(at_entry.sregs.ss.selector, 0x18);
  EXPECT_EQ(at_entry.sregs.cs.dpl, 0);
  EXPECT_EQ(at_entry.regs.rflags, 0x46u);  // IF masked, bit 1 set
  EXPECT_EQ(at_entry.regs.rcx, 0x401234u);
  EXPECT_EQ(at_entry.regs.r11, 0x246u);
  EXPECT_EQ(at_entry.regs.rsp, f.rsp);
}

}  // namespace
}  // namespace vmm::compat::pvm
