#include "vmm/vm/compat/kvm_pvm/emulate.h"

#include <gtest/gtest.h>

#include "tests/unit/compat/pvm_test_util.h"

namespace vmm::compat::pvm {
namespace {

using namespace test_util;  // NOLINT: test fixtures

constexpr uint64_t kData = 0xFFFF888000010000;  // supervisor RW page, then a second one
constexpr uint64_t kDataPa = 0x10000;
constexpr uint64_t kUserData = 0x00007F0000000000;
constexpr uint64_t kUserPa = 0x20000;

class EmulateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pt_.Map4K(kData, kDataPa, kRw);
    pt_.Map4K(kData + 0x1000, kDataPa + 0x1000, kRw);
    pt_.Map4K(kUserData, kUserPa, kRw | kUs);
    s_.gpr[kRdi] = kData;
  }
  Outcome Go(std::vector<uint8_t> bytes) {
    Result<Outcome> r = DecodeAndEmulate(std::move(bytes), s_, ram_);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return r.has_value() ? r.value() : Outcome{};
  }
  // Runs an instruction that must fault, and checks that nothing but CR2 changed.
  Outcome Faults(std::vector<uint8_t> bytes) {
    VcpuState before = s_;
    Outcome o = Go(std::move(bytes));
    EXPECT_EQ(o.kind, Outcome::Kind::kException);
    before.cr2 = s_.cr2;
    EXPECT_EQ(s_.gpr, before.gpr);
    EXPECT_EQ(s_.rip, before.rip);
    EXPECT_EQ(s_.rflags, before.rflags);
    EXPECT_EQ(s_.mxcsr, before.mxcsr);
    return o;
  }

  FakeGuestRam ram_{kRamSize};
  PageTables pt_{ram_};
  VcpuState s_ = LongModeState(pt_.cr3());
};

TEST_F(EmulateTest, Int3InjectsBreakpointAsATrapPastTheInstruction) {
  s_.rflags |= rflags::kTf;  // delivery clears TF: no single-step #DB on top
  EXPECT_EQ(Go({0xCC}), Raised(Vector::kBp));
  EXPECT_EQ(s_.rip, kKernelRip + 1);
  EXPECT_EQ(Go({0x66, 0xCC}), Raised(Vector::kBp));  // prefixes count in the length
  EXPECT_EQ(s_.rip, kKernelRip + 3);
}

TEST_F(EmulateTest, LockedInt3IsInvalidOpcodeAndLeavesRip) {
  EXPECT_EQ(Faults({0xF0, 0xCC}), Raised(Vector::kUd));
}

TEST_F(EmulateTest, StacSetsAcAndClacClearsIt) {
  EXPECT_EQ(Go({0x0F, 0x01, 0xCB}), Completed());
  EXPECT_NE(s_.rflags & rflags::kAc, 0u);
  EXPECT_EQ(s_.rip, kKernelRip + 3);
  EXPECT_EQ(Go({0x0F, 0x01, 0xCA}), Completed());
  EXPECT_EQ(s_.rflags & rflags::kAc, 0u);
  EXPECT_EQ(s_.rip, kKernelRip + 6);
}

TEST_F(EmulateTest, ClacAndStacAreInvalidOutsideRingZero) {
  for (uint8_t cpl : {1, 3}) {
    s_.cpl = cpl;
    EXPECT_EQ(Faults({0x0F, 0x01, 0xCB}), Raised(Vector::kUd));
    EXPECT_EQ(Faults({0x0F, 0x01, 0xCA}), Raised(Vector::kUd));
  }
}

TEST_F(EmulateTest, CompletionClearsResumeFlagAndSingleStepsWithTf) {
  s_.rflags |= rflags::kRf | rflags::kTf;
  Outcome o = Go({0x0F, 0x01, 0xCB});
  EXPECT_EQ(o.kind, Outcome::Kind::kException);
  EXPECT_EQ(o.exception.vector, Vector::kDb);
  EXPECT_EQ(o.exception.dr6, 1u << 14);  // DR6.BS
  EXPECT_EQ(s_.rip, kKernelRip + 3);     // a trap: the instruction did complete
  EXPECT_NE(s_.rflags & rflags::kAc, 0u);
  EXPECT_EQ(s_.rflags & rflags::kRf, 0u);
}

TEST_F(EmulateTest, FwaitIsANopUnlessTsAndMpOrAPendingX87Error) {
  s_.cr0 &= ~cr0::kMp;
  s_.cr0 |= cr0::kTs;  // TS alone does not trap WAIT
  EXPECT_EQ(Go({0x9B}), Completed());
  EXPECT_EQ(s_.rip, kKernelRip + 1);
  s_.cr0 |= cr0::kMp;
  EXPECT_EQ(Faults({0x9B}), Raised(Vector::kNm));
  s_.cr0 &= ~cr0::kTs;
  s_.fpu_status = 0x80 | 0x1;  // ES with IE
  EXPECT_EQ(Faults({0x9B}), Raised(Vector::kMf));
}

TEST_F(EmulateTest, PopcntRegisterSizesAndFlags) {
  s_.gpr[kRcx] = 0xF0F0'0000'0000'00FF;
  s_.gpr[kRax] = 0xFFFF'FFFF'FFFF'FFFF;
  s_.rflags |= rflags::kArith;
  EXPECT_EQ(Go({0xF3, 0x0F, 0xB8, 0xC1}), Completed());  // popcnt eax, ecx
  EXPECT_EQ(s_.gpr[kRax], 8u);                           // zero-extended to 64 bits
  EXPECT_EQ(s_.rflags & rflags::kArith, 0u);
  EXPECT_EQ(s_.rip, kKernelRip + 4);
  s_.gpr[kRax] = 0xFFFF'FFFF'FFFF'FFFF;
  EXPECT_EQ(Go({0x66, 0xF3, 0x0F, 0xB8, 0xC1}), Completed());  // popcnt ax, cx
  EXPECT_EQ(s_.gpr[kRax], 0xFFFF'FFFF'FFFF'0008u);
  EXPECT_EQ(Go({0xF3, 0x4C, 0x0F, 0xB8, 0xC1}), Completed());  // popcnt r8, rcx
  EXPECT_EQ(s_.gpr[kR8], 16u);
  s_.gpr[kRcx] = 0xFFFF'FFFF'0000'0000;
  s_.rflags |= rflags::kCf | rflags::kOf;
  EXPECT_EQ(Go({0xF3, 0x0F, 0xB8, 0xC1}), Completed());  // the low 32 bits are zero
  EXPECT_EQ(s_.gpr[kRax], 0u);
  EXPECT_EQ(s_.rflags & rflags::kArith, rflags::kZf);
}

TEST_F(EmulateTest, PopcntMemoryOperands) {
  ram_.Put<uint64_t>(kDataPa + 8, 0x0101'0101'0101'0101);
  EXPECT_EQ(Go({0xF3, 0x48, 0x0F, 0xB8, 0x47, 0x08}), Completed());  // popcnt rax, [rdi+8]
  EXPECT_EQ(s_.gpr[kRax], 8u);
  s_.fs_base = kData;
  s_.gpr[kRbx] = 1;
  EXPECT_EQ(Go({0x64, 0xF3, 0x0F, 0xB8, 0x0C, 0xDD, 0, 0, 0, 0}), Completed());  // fs:[rbx*8]
  EXPECT_EQ(s_.gpr[kRcx], 4u);
  // RIP-relative: next RIP (rip + 9) + disp32 lands on kData + 8.
  s_.rip = kData - 0x100;
  EXPECT_EQ(Go({0xF3, 0x48, 0x0F, 0xB8, 0x15, 0x08 + 0x100 - 9, 0x00, 0x00, 0x00}), Completed());
  EXPECT_EQ(s_.gpr[kRdx], 8u);
  EXPECT_EQ(s_.rip, kData - 0x100 + 9);
}

TEST_F(EmulateTest, PopcntAcrossIntoANotPresentPageFaultsOnTheSecondPage) {
  pt_.SetEntry(kData + 0x1000, 1, 0);
  s_.gpr[kRdi] = kData + 0xFFC;
  Outcome o = Faults({0xF3, 0x48, 0x0F, 0xB8, 0x07});
  EXPECT_EQ(o, Raised(Exception::PageFault(kData + 0x1000, 0)));
  EXPECT_EQ(s_.cr2, kData + 0x1000);  // ready for KVM_SET_SREGS
}

TEST_F(EmulateTest, PopcntAddressFaults) {
  s_.gpr[kRdi] = 0x0000800000000000;
  EXPECT_EQ(Faults({0xF3, 0x0F, 0xB8, 0x07}), RaisedWithCode(Vector::kGp, 0));
  s_.gpr[kRsp] = 0x0000800000000000;
  EXPECT_EQ(Faults({0xF3, 0x0F, 0xB8, 0x04, 0x24}), RaisedWithCode(Vector::kSs, 0));  // [rsp]
  s_.gpr[kRdi] = kData;
  s_.cpl = 3;  // a supervisor page from user mode
  EXPECT_EQ(Faults({0xF3, 0x0F, 0xB8, 0x07}),
            Raised(Exception::PageFault(kData, pf::kPresent | pf::kUser)));
}

TEST_F(EmulateTest, MisalignedUserAccessWithAlignmentCheckIsAc) {
  s_.cpl = 3;
  s_.cr0 |= cr0::kAm;
  s_.rflags |= rflags::kAc;
  s_.gpr[kRdi] = kUserData + 2;
  EXPECT_EQ(Faults({0xF3, 0x0F, 0xB8, 0x07}), RaisedWithCode(Vector::kAc, 0));
  s_.gpr[kRdi] = kUserData + 4;
  EXPECT_EQ(Go({0xF3, 0x0F, 0xB8, 0x07}), Completed());
}

TEST_F(EmulateTest, LdmxcsrLoadsAndAsksForTheFpuStateToBeWritten) {
  ram_.Put<uint32_t>(kDataPa, 0x9FC0);  // FTZ | DAZ | masks
  Outcome o = Go({0x0F, 0xAE, 0x17});   // ldmxcsr [rdi]
  EXPECT_EQ(o.kind, Outcome::Kind::kCompleted);
  EXPECT_TRUE(o.mxcsr_written);
  EXPECT_EQ(s_.mxcsr, 0x9FC0u);
  EXPECT_EQ(s_.rip, kKernelRip + 3);
}

TEST_F(EmulateTest, LdmxcsrWithReservedBitsIsGp) {
  ram_.Put<uint32_t>(kDataPa, 0x1'1F80);
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x17}), RaisedWithCode(Vector::kGp, 0));
  ram_.Put<uint32_t>(kDataPa, 0x1FC0);  // DAZ...
  s_.mxcsr_mask = 0;                    // ...on a CPU whose FXSAVE mask says 0xFFBF
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x17}), RaisedWithCode(Vector::kGp, 0));
}

TEST_F(EmulateTest, SseStateControlsGuardMxcsrAccess) {
  s_.cr0 |= cr0::kTs;
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x17}), Raised(Vector::kNm));
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x1F}), Raised(Vector::kNm));
  s_.cr0 |= cr0::kEm;  // #UD outranks #NM
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x17}), Raised(Vector::kUd));
  s_.cr0 &= ~(cr0::kEm | cr0::kTs);
  s_.cr4 &= ~cr4::kOsfxsr;
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x1F}), Raised(Vector::kUd));
}

TEST_F(EmulateTest, StmxcsrStores) {
  s_.mxcsr = 0x1F80;
  s_.gpr[kRsp] = kData + 0x20;
  EXPECT_EQ(Go({0x0F, 0xAE, 0x5C, 0x24, 0xFC}), Completed());  // stmxcsr [rsp-4]
  EXPECT_EQ(ram_.Get<uint32_t>(kDataPa + 0x1C), 0x1F80u);
  EXPECT_EQ(s_.rip, kKernelRip + 5);
  EXPECT_EQ(pt_.Entry(kData, 1) & kDirty, kDirty);
}

TEST_F(EmulateTest, StmxcsrAcrossIntoANotPresentPageWritesNothing) {
  pt_.SetEntry(kData + 0x1000, 1, 0);
  ram_.Put<uint16_t>(kDataPa + 0xFFE, 0xBEEF);
  s_.gpr[kRdi] = kData + 0xFFE;
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x1F}), Raised(Exception::PageFault(kData + 0x1000, pf::kWrite)));
  EXPECT_EQ(ram_.Get<uint16_t>(kDataPa + 0xFFE), 0xBEEFu);
}

TEST_F(EmulateTest, StmxcsrToAReadOnlyPageFaults) {
  pt_.Map4K(kData, kDataPa, 0);
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x1F}),
            Raised(Exception::PageFault(kData, pf::kPresent | pf::kWrite)));
}

TEST_F(EmulateTest, XsaveFamilyIsHandedBackWithItsAddress) {
  s_.gpr[kRdi] = kData + 0x40;
  for (std::vector<uint8_t> insn : std::vector<std::vector<uint8_t>>{
           {0x0F, 0xAE, 0x27}, {0x48, 0x0F, 0xAE, 0x2F}, {0x0F, 0xAE, 0x37}}) {
    Outcome o = Go(insn);
    EXPECT_EQ(o.kind, Outcome::Kind::kNeedsFpuState);
    EXPECT_EQ(o.fpu_linear, kData + 0x40);
    EXPECT_EQ(s_.rip, kKernelRip);  // the plumbing completes it, or not
  }
}

TEST_F(EmulateTest, XsaveChecksThatNeedNoFpuState) {
  s_.gpr[kRdi] = kData + 0x20;  // not 64-byte aligned
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x27}), RaisedWithCode(Vector::kGp, 0));
  s_.cr0 |= cr0::kTs;
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x2F}), Raised(Vector::kNm));
  s_.cr4 &= ~cr4::kOsxsave;
  EXPECT_EQ(Faults({0x0F, 0xAE, 0x37}), Raised(Vector::kUd));
}

TEST_F(EmulateTest, InvalidEncodingsAndOverlongInstructions) {
  EXPECT_EQ(Faults({0xF0, 0xF3, 0x0F, 0xB8, 0xC1}), Raised(Vector::kUd));
  EXPECT_EQ(Faults({0x48, 0x0F, 0xC7, 0xC8}), Raised(Vector::kUd));
  std::vector<uint8_t> too_long(15, 0x66);
  EXPECT_EQ(Faults(too_long), RaisedWithCode(Vector::kGp, 0));
}

}  // namespace
}  // namespace vmm::compat::pvm
