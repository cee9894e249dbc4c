// cmpxchg16b, the one completed instruction that writes guest memory atomically, and the
// address problems every memory operand can meet.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/unit/compat/pvm_test_util.h"
#include "vmm/vm/compat/kvm_pvm/emulate.h"

namespace vmm::compat::pvm {
namespace {

using namespace test_util;  // NOLINT: test fixtures

constexpr uint64_t kData = 0xFFFF888000010000;
constexpr uint64_t kDataPa = 0x10000;
constexpr uint64_t kUserData = 0x00007F0000000000;
constexpr uint64_t kUserPa = 0x20000;
const std::vector<uint8_t> kLockCmpxchg16bRdi = {0xF0, 0x48, 0x0F, 0xC7, 0x0F};

class Cmpxchg16bTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pt_.Map4K(kData, kDataPa, kRw);
    pt_.Map4K(kUserData, kUserPa, kRw | kUs);
    s_.gpr[kRdi] = kData + 0x30;
    s_.gpr[kRax] = 0x1111;  // expected, RDX:RAX
    s_.gpr[kRdx] = 0x2222;
    s_.gpr[kRbx] = 0x3333;  // replacement, RCX:RBX
    s_.gpr[kRcx] = 0x4444;
  }
  void Store(uint64_t pa, uint64_t lo, uint64_t hi) {
    ram_.Put<uint64_t>(pa, lo);
    ram_.Put<uint64_t>(pa + 8, hi);
  }
  Result<Outcome> Exec(std::vector<uint8_t> insn = kLockCmpxchg16bRdi) {
    return DecodeAndEmulate(std::move(insn), s_, ram_);
  }
  Outcome Faults(std::vector<uint8_t> insn = kLockCmpxchg16bRdi) {
    VcpuState before = s_;
    Result<Outcome> o = Exec(std::move(insn));
    EXPECT_TRUE(o.has_value());
    EXPECT_EQ(s_.gpr, before.gpr);
    EXPECT_EQ(s_.rip, before.rip);
    EXPECT_EQ(s_.rflags, before.rflags);
    return o.has_value() ? o.value() : Outcome{};
  }

  FakeGuestRam ram_{kRamSize};
  PageTables pt_{ram_};
  VcpuState s_ = LongModeState(pt_.cr3());
};

TEST_F(Cmpxchg16bTest, EqualValueIsReplacedAndZfSet) {
  Store(kDataPa + 0x30, 0x1111, 0x2222);
  s_.rflags |= rflags::kCf;
  ASSERT_EQ(Exec().value(), Completed());
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x30), 0x3333u);
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x38), 0x4444u);
  EXPECT_EQ(s_.rflags & (rflags::kZf | rflags::kCf), rflags::kZf | rflags::kCf);
  EXPECT_EQ(s_.rip, kKernelRip + 5);
  EXPECT_EQ(pt_.Entry(kData, 1) & kDirty, kDirty);
}

TEST_F(Cmpxchg16bTest, DifferentValueIsLoadedIntoRdxRaxAndZfCleared) {
  Store(kDataPa + 0x30, 0x1111, 0x9999);  // only the high half differs
  s_.rflags |= rflags::kZf;
  ASSERT_EQ(Exec().value(), Completed());
  EXPECT_EQ(s_.gpr[kRax], 0x1111u);
  EXPECT_EQ(s_.gpr[kRdx], 0x9999u);
  EXPECT_EQ(s_.rflags & rflags::kZf, 0u);
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x38), 0x9999u);
}

TEST_F(Cmpxchg16bTest, WithoutLockAndWithSegmentAndRipRelativeOperands) {
  Store(kDataPa + 0x40, 0x1111, 0x2222);
  s_.gs_base = kData;
  s_.gpr[kR12] = 0;
  // cmpxchg16b gs:[r12+0x40]
  ASSERT_EQ(Exec({0x65, 0x49, 0x0F, 0xC7, 0x4C, 0x24, 0x40}).value(), Completed());
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x40), 0x3333u);
  Store(kDataPa + 0x50, 0x1111, 0x2222);
  s_.rip = kData;  // next RIP kData+9, +0x47
  ASSERT_EQ(Exec({0xF0, 0x48, 0x0F, 0xC7, 0x0D, 0x47, 0, 0, 0}).value(), Completed());
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x50), 0x3333u);
}

TEST_F(Cmpxchg16bTest, MisalignedOperandIsGpBeforeAnyPageWalk) {
  // Straddling into a not-present page: alignment is checked first, so #GP(0), not #PF.
  s_.gpr[kRdi] = kData + 0xFF8;
  EXPECT_EQ(Faults(), RaisedWithCode(Vector::kGp, 0));
  s_.gpr[kRdi] = kData + 0x38;
  EXPECT_EQ(Faults(), RaisedWithCode(Vector::kGp, 0));
  EXPECT_EQ(pt_.Entry(kData, 1) & kAcc, 0u);
}

TEST_F(Cmpxchg16bTest, NonCanonicalIsGpOrSsForStackAddresses) {
  s_.gpr[kRdi] = 0x8000000000000000;
  EXPECT_EQ(Faults(), RaisedWithCode(Vector::kGp, 0));
  s_.gpr[kRbp] = 0x0000800000000000;
  EXPECT_EQ(Faults({0x48, 0x0F, 0xC7, 0x4D, 0x00}), RaisedWithCode(Vector::kSs, 0));  // [rbp]
  s_.fs_base = 0;  // an FS override makes it a data access again
  EXPECT_EQ(Faults({0x64, 0x48, 0x0F, 0xC7, 0x4D, 0x00}), RaisedWithCode(Vector::kGp, 0));
}

TEST_F(Cmpxchg16bTest, NotPresentPageFaultsWithCr2AndWritesNothing) {
  s_.gpr[kRdi] = kData + 0x1000;
  Outcome o = Faults();
  EXPECT_EQ(o, Raised(Exception::PageFault(kData + 0x1000, pf::kWrite)));
  EXPECT_EQ(s_.cr2, kData + 0x1000);
}

TEST_F(Cmpxchg16bTest, ReadOnlyPageFaultsEvenWhenTheCompareFails) {
  Store(kDataPa + 0x30, 0xAAAA, 0xBBBB);  // compare fails: still a write cycle
  pt_.Map4K(kData, kDataPa, 0);
  EXPECT_EQ(Faults(), Raised(Exception::PageFault(kData + 0x30, pf::kPresent | pf::kWrite)));
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x30), 0xAAAAu);
}

TEST_F(Cmpxchg16bTest, OperandOutsideGuestRamIsAnErrorAndChangesNothing) {
  pt_.Map4K(kData, 0xFED00000, kRw);  // e.g. an MMIO page
  VcpuState before = s_;
  Result<Outcome> o = Exec();
  ASSERT_FALSE(o.has_value());
  EXPECT_EQ(o.error().kind(), ErrorKind::kGuest);
  EXPECT_NE(o.error().message().find("not RAM"), std::string::npos);
  EXPECT_EQ(s_.gpr, before.gpr);
  EXPECT_EQ(s_.rip, before.rip);
}

TEST_F(Cmpxchg16bTest, UserModeOnUserAndSupervisorPages) {
  s_.cpl = 3;
  s_.gpr[kRdi] = kUserData + 0x10;
  Store(kUserPa + 0x10, 0x1111, 0x2222);
  ASSERT_EQ(Exec().value(), Completed());
  EXPECT_EQ(ram_.Get<uint64_t>(kUserPa + 0x10), 0x3333u);
  s_.gpr[kRdi] = kData;
  EXPECT_EQ(Faults(), Raised(Exception::PageFault(kData, pf::kPresent | pf::kWrite | pf::kUser)));
}

TEST_F(Cmpxchg16bTest, SmapStopsTheKernelOnUserPagesUntilStac) {
  s_.cr4 |= cr4::kSmap;
  s_.gpr[kRdi] = kUserData;
  EXPECT_EQ(Faults(), Raised(Exception::PageFault(kUserData, pf::kPresent | pf::kWrite)));
  ASSERT_EQ(Exec({0x0F, 0x01, 0xCB}).value(), Completed());  // stac
  EXPECT_EQ(Exec().value(), Completed());
}

// Emulated cmpxchg16b must be atomic against a vCPU that runs the real instruction on the
// same memory: each side adds 1 to both halves many times, and no increment may be lost.
TEST_F(Cmpxchg16bTest, AtomicAgainstAConcurrentNativeWriter) {
  constexpr int kRounds = 20000;
  Store(kDataPa + 0x30, 0, 0);
  std::span<uint8_t> native = ram_.HostSpan(kDataPa + 0x30, 16);
  std::atomic<bool> go{false};
  std::thread other([&] {
    while (!go.load()) {
    }
    uint64_t lo = 0, hi = 0;
    for (int i = 0; i < kRounds; ++i) {
      for (;;) {  // the host's own LOCK CMPXCHG16B, as a vCPU running natively would
        Cmpxchg16Result r = CompareExchange16(native, lo, hi, lo + 1, hi + 1).value();
        lo = r.swapped ? lo + 1 : r.old_lo;
        hi = r.swapped ? hi + 1 : r.old_hi;
        if (r.swapped) break;
      }
    }
  });
  go = true;
  for (int i = 0; i < kRounds; ++i) {
    for (;;) {  // the guest's usual loop: RDX:RAX = current, RCX:RBX = current + 1
      s_.gpr[kRbx] = s_.gpr[kRax] + 1;
      s_.gpr[kRcx] = s_.gpr[kRdx] + 1;
      ASSERT_TRUE(Exec().has_value());
      if (s_.rflags & rflags::kZf) break;
    }
  }
  other.join();
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x30), 2u * kRounds);
  EXPECT_EQ(ram_.Get<uint64_t>(kDataPa + 0x38), 2u * kRounds);
}

}  // namespace
}  // namespace vmm::compat::pvm
