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

}  // namespace
}  // namespace vmm::compat::pvm
