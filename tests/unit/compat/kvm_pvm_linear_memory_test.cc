#include "vmm/vm/compat/kvm_pvm/linear_memory.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "tests/unit/compat/pvm_test_util.h"

namespace vmm::compat::pvm {
namespace {

using namespace test_util;  // NOLINT: test fixtures

constexpr uint64_t kVa = 0xFFFF888000200000;  // two adjacent virtual pages...
constexpr uint64_t kPa0 = 0x30000;            // ...backed by non-adjacent physical ones
constexpr uint64_t kPa1 = 0x50000;

class LinearMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pt_.Map4K(kVa, kPa0, kRw);
    pt_.Map4K(kVa + 0x1000, kPa1, kRw);
  }
  FakeGuestRam ram_{kRamSize};
  PageTables pt_{ram_};
  VcpuState s_ = LongModeState(pt_.cr3());
  LinearMemory lm_{s_, ram_};
};

TEST(PvmCanonical, FortyEightAndFiftySevenBitForms) {
  VcpuState s = LongModeState();
  EXPECT_TRUE(IsCanonical(s, 0x00007FFFFFFFFFFF));
  EXPECT_TRUE(IsCanonical(s, 0xFFFF800000000000));
  EXPECT_FALSE(IsCanonical(s, 0x0000800000000000));
  EXPECT_FALSE(IsCanonical(s, 0xFF5F000000000000));
  s.cr4 |= cr4::kLa57;
  EXPECT_TRUE(IsCanonical(s, 0xFF5F000000000000));
  EXPECT_TRUE(IsCanonical(s, 0x0000800000000000));
  EXPECT_FALSE(IsCanonical(s, 0x0100000000000000));
}

TEST_F(LinearMemoryTest, NonCanonicalAddressIsGpOrSsAndTouchesNothing) {
  std::array<uint8_t, 8> buf{};
  Result<Fault> gp = lm_.Read(0x0000800000000000, buf);
  ASSERT_TRUE(gp.has_value());
  EXPECT_EQ(gp.value(), Exception::WithCode(Vector::kGp, 0));
  Result<Fault> ss = lm_.Write(0x8000000000000000, buf, Vector::kSs);
  EXPECT_EQ(ss.value(), Exception::WithCode(Vector::kSs, 0));
  // The last byte of the access counts too.
  EXPECT_EQ(lm_.Read(0x00007FFFFFFFFFFC, buf).value(), Exception::WithCode(Vector::kGp, 0));
}

TEST_F(LinearMemoryTest, ReadAcrossAPageBoundaryUsesBothTranslations) {
  for (int i = 0; i < 8; ++i) {
    ram_.Put<uint8_t>(kPa0 + 0xFFC + i, static_cast<uint8_t>(0x10 + i));  // 4 land in page 0
    ram_.Put<uint8_t>(kPa1 + i, static_cast<uint8_t>(0x20 + i));
  }
  std::array<uint8_t, 8> buf{};
  ASSERT_FALSE(lm_.Read(kVa + 0xFFC, buf).value());
  EXPECT_EQ(buf, (std::array<uint8_t, 8>{0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23}));
}

TEST_F(LinearMemoryTest, WriteAcrossIntoANotPresentPageWritesNothing) {
  pt_.SetEntry(kVa + 0x1000, 1, 0);
  std::array<uint8_t, 16> data;
  data.fill(0xAB);
  Result<Fault> f = lm_.Write(kVa + 0xFF8, data);  // an m128 straddling the boundary
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(f.value());
  EXPECT_EQ(f.value()->vector, Vector::kPf);
  EXPECT_EQ(f.value()->cr2, kVa + 0x1000);  // the first byte of the second page
  EXPECT_EQ(f.value()->error_code, pf::kWrite);
  EXPECT_EQ(ram_.Get<uint64_t>(kPa0 + 0xFF8), 0u);     // first page untouched...
  EXPECT_EQ(pt_.Entry(kVa, 1) & (kAcc | kDirty), 0u);  // ...and its PTE not marked
}

TEST_F(LinearMemoryTest, WriteAcrossIntoAReadOnlyPageWritesNothing) {
  pt_.Map4K(kVa + 0x1000, kPa1, 0);
  std::array<uint8_t, 4> data = {1, 2, 3, 4};
  Result<Fault> f = lm_.Write(kVa + 0xFFE, data);
  ASSERT_TRUE(f.value());
  EXPECT_EQ(f.value()->error_code, pf::kPresent | pf::kWrite);
  EXPECT_EQ(f.value()->cr2, kVa + 0x1000);
  EXPECT_EQ(ram_.Get<uint16_t>(kPa0 + 0xFFE), 0u);
}

TEST_F(LinearMemoryTest, SuccessfulWriteSetsAccessedAndDirty) {
  std::array<uint8_t, 4> data = {1, 2, 3, 4};
  ASSERT_FALSE(lm_.Write(kVa + 0xFFE, data).value());
  EXPECT_EQ(ram_.Get<uint16_t>(kPa0 + 0xFFE), 0x0201u);
  EXPECT_EQ(ram_.Get<uint16_t>(kPa1), 0x0403u);
  EXPECT_EQ(pt_.Entry(kVa, 1) & (kAcc | kDirty), kAcc | kDirty);
  EXPECT_EQ(pt_.Entry(kVa + 0x1000, 1) & (kAcc | kDirty), kAcc | kDirty);
}

TEST_F(LinearMemoryTest, PageBackedByNonRamIsAnError) {
  pt_.Map4K(kVa + 0x1000, 0xFEE00000, kRw);  // the local APIC, say: not in our RAM
  std::array<uint8_t, 4> data = {1, 2, 3, 4};
  Result<Fault> f = lm_.Write(kVa + 0xFFE, data);
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().kind(), ErrorKind::kGuest);
  EXPECT_NE(f.error().message().find("0xfee00000"), std::string::npos);
  EXPECT_EQ(ram_.Get<uint16_t>(kPa0 + 0xFFE), 0u);
}

TEST_F(LinearMemoryTest, OversizedAccessIsRefused) {
  std::vector<uint8_t> big(LinearMemory::kMaxAccess + 1);
  EXPECT_FALSE(lm_.Read(kVa, big).has_value());
}

TEST_F(LinearMemoryTest, FetchReadsFifteenBytesAcrossPages) {
  for (int i = 0; i < 16; ++i) ram_.Put<uint8_t>(kPa0 + 0xFF8 + i, static_cast<uint8_t>(i));
  for (int i = 0; i < 8; ++i) ram_.Put<uint8_t>(kPa1 + i, static_cast<uint8_t>(8 + i));
  s_.rip = kVa + 0xFF8;
  Result<FetchedInstruction> f = FetchInstruction(s_, ram_);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->size, 15);
  EXPECT_FALSE(f->fault);
  EXPECT_EQ(f->bytes[14], 14);
}

TEST_F(LinearMemoryTest, FetchStopsAtANotPresentPageAndReportsIt) {
  pt_.SetEntry(kVa + 0x1000, 1, 0);
  s_.rip = kVa + 0xFFD;
  Result<FetchedInstruction> f = FetchInstruction(s_, ram_);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->size, 3);
  ASSERT_TRUE(f->fault);
  EXPECT_EQ(f->fault->cr2, kVa + 0x1000);
  EXPECT_EQ(f->fault->error_code, pf::kFetch);
}

TEST_F(LinearMemoryTest, FetchFromAnNxPageFaults) {
  pt_.Map4K(kVa, kPa0, kRw | kNx);
  s_.rip = kVa;
  Result<FetchedInstruction> f = FetchInstruction(s_, ram_);
  EXPECT_EQ(f->size, 0);
  ASSERT_TRUE(f->fault);
  EXPECT_EQ(f->fault->error_code, pf::kPresent | pf::kFetch);
}

TEST(PvmLinearMemory, PagingOffWrapsAtFourGiBOutsideLongMode) {
  FakeGuestRam ram(kRamSize);
  VcpuState s;  // real-mode-like: no paging, no long mode
  ram.Put<uint8_t>(0, 0x5A);
  Result<Mapping> m = LinearMemory(s, ram).Map(0x1'00000000, 1, AccessType::kRead);
  ASSERT_TRUE(m.has_value());  // 4 GiB wraps to 0
  ASSERT_EQ(m->pieces.size(), 1u);
  EXPECT_EQ(m->pieces[0][0], 0x5A);
}

}  // namespace
}  // namespace vmm::compat::pvm
