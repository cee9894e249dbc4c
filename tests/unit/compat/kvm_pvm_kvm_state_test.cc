#include "vmm/vm/compat/kvm_pvm/kvm_state.h"

#include <gtest/gtest.h>

#include <cstring>

namespace vmm::compat::pvm {
namespace {

kvm_regs NumberedRegs() {
  kvm_regs r;
  uint64_t* words = reinterpret_cast<uint64_t*>(&r);
  for (size_t i = 0; i < sizeof(r) / 8; ++i) words[i] = 0x100 + i;  // rax=0x100, rbx=0x101..
  return r;
}

TEST(PvmKvmState, GprsFollowTheModRmNumberingNotKvmRegsOrder) {
  kvm_sregs sregs{};
  VcpuState s = FromKvm(NumberedRegs(), sregs);
  EXPECT_EQ(s.gpr[kRax], 0x100u);
  EXPECT_EQ(s.gpr[kRbx], 0x101u);
  EXPECT_EQ(s.gpr[kRcx], 0x102u);
  EXPECT_EQ(s.gpr[kRdx], 0x103u);
  EXPECT_EQ(s.gpr[kRsi], 0x104u);
  EXPECT_EQ(s.gpr[kRdi], 0x105u);
  EXPECT_EQ(s.gpr[kRsp], 0x106u);
  EXPECT_EQ(s.gpr[kRbp], 0x107u);
  EXPECT_EQ(s.gpr[kR8], 0x108u);
  EXPECT_EQ(s.gpr[kR15], 0x10Fu);
  EXPECT_EQ(s.rip, 0x110u);
  EXPECT_EQ(s.rflags, 0x111u);
}

TEST(PvmKvmState, SregsGiveModeCplAndBases) {
  kvm_sregs sregs{};
  sregs.cs.l = 1;
  sregs.ss.dpl = 3;
  sregs.cs.dpl = 3;
  sregs.fs.base = 0x1000;
  sregs.gs.base = 0x2000;
  sregs.cr0 = 0x80050033;
  sregs.cr3 = 0x1234000;
  sregs.cr4 = 0x3406E0;
  sregs.efer = 0xD01;
  VcpuState s = FromKvm(kvm_regs{}, sregs);
  EXPECT_TRUE(s.In64BitMode());
  EXPECT_EQ(s.cpl, 3);
  EXPECT_EQ(s.fs_base, 0x1000u);
  EXPECT_EQ(s.gs_base, 0x2000u);
  EXPECT_EQ(s.cr0, 0x80050033u);
  EXPECT_EQ(s.cr3, 0x1234000u);
  EXPECT_EQ(s.cr4, 0x3406E0u);
  EXPECT_EQ(s.efer, 0xD01u);
}

TEST(PvmKvmState, RoundTripWritesOnlyWhatTheEmulatorChanges) {
  kvm_regs regs = NumberedRegs();
  kvm_sregs sregs{};
  sregs.cr3 = 0x5000;
  sregs.apic_base = 0xFEE00900;
  VcpuState s = FromKvm(regs, sregs);
  s.gpr[kRdx] = 42;
  s.rip += 3;
  s.cr2 = 0xDEAD000;
  s.cr3 = 0x9999000;  // not ours to change
  kvm_regs regs_out = regs;
  kvm_sregs sregs_out = sregs;
  StoreToKvm(s, regs_out, sregs_out);
  EXPECT_EQ(regs_out.rdx, 42u);
  EXPECT_EQ(regs_out.rip, regs.rip + 3);
  EXPECT_EQ(regs_out.rbx, regs.rbx);
  EXPECT_EQ(sregs_out.cr2, 0xDEAD000u);
  EXPECT_EQ(sregs_out.cr3, 0x5000u);
  EXPECT_EQ(sregs_out.apic_base, 0xFEE00900u);
}

TEST(PvmKvmState, FpuFieldsAndExceptionEvents) {
  kvm_xsave xsave{};
  auto* bytes = reinterpret_cast<uint8_t*>(xsave.region);
  const uint32_t mxcsr = 0x1FA0, mask = 0xFFBF;
  const uint16_t fsw = 0x80;
  std::memcpy(bytes + 24, &mxcsr, 4);  // SDM Vol. 1 Table 10-2: MXCSR, MXCSR_MASK, FSW
  std::memcpy(bytes + 28, &mask, 4);
  std::memcpy(bytes + 2, &fsw, 2);
  VcpuState s;
  LoadFpuFields(xsave, s);
  EXPECT_EQ(s.mxcsr, 0x1FA0u);
  EXPECT_EQ(s.mxcsr_mask, 0xFFBFu);
  EXPECT_EQ(s.fpu_status, 0x80);
  s.mxcsr = 0x9FC0;
  StoreMxcsr(s, xsave);
  uint32_t stored;
  std::memcpy(&stored, bytes + 24, 4);
  EXPECT_EQ(stored, 0x9FC0u);
  uint64_t xstate_bv;
  std::memcpy(&xstate_bv, bytes + 512, 8);
  EXPECT_EQ(xstate_bv & 2, 2u) << "SSE state present, or KVM ignores the MXCSR";

  kvm_vcpu_events events{};
  SetInjectedException(Exception::PageFault(0x1000, 0x3), events);
  EXPECT_EQ(events.exception.injected, 1);
  EXPECT_EQ(events.exception.nr, 14);
  EXPECT_EQ(events.exception.has_error_code, 1);
  EXPECT_EQ(events.exception.error_code, 3u);
  SetInjectedException(Exception::Fault(Vector::kBp), events);
  EXPECT_EQ(events.exception.nr, 3);
  EXPECT_EQ(events.exception.has_error_code, 0);
}

}  // namespace
}  // namespace vmm::compat::pvm
