#include "vmm/vm/compat/kvm_pvm/page_walk.h"

#include <gtest/gtest.h>

#include "tests/unit/compat/pvm_test_util.h"

namespace vmm::compat::pvm {
namespace {

using namespace test_util;  // NOLINT: test fixtures

constexpr uint64_t kVa = 0xFFFF888000123000;
constexpr uint64_t kPa = 0x345000;

class PageWalkTest : public ::testing::Test {
 protected:
  PageWalk Walk(uint64_t la, AccessType access) {
    Result<PageWalk> w = Translate(s_, ram_, la, access);
    EXPECT_TRUE(w.has_value()) << w.error().message();
    return w.has_value() ? w.value() : PageWalk{};
  }
  uint32_t FaultCode(uint64_t la, AccessType access) {
    PageWalk w = Walk(la, access);
    if (!w.fault) {
      ADD_FAILURE() << "no fault";
      return ~0u;
    }
    EXPECT_EQ(w.fault->vector, Vector::kPf);
    EXPECT_EQ(w.fault->cr2, la);
    EXPECT_TRUE(w.fault->has_error_code);
    EXPECT_EQ(w.update_count, 0);
    return w.fault->error_code;
  }
  bool Allowed(uint64_t la, AccessType access) { return !Walk(la, access).fault; }

  FakeGuestRam ram_{kRamSize};
  PageTables pt_{ram_};
  VcpuState s_ = LongModeState(pt_.cr3());
};

TEST_F(PageWalkTest, FourLevelTranslatesA4KPage) {
  pt_.Map4K(kVa, kPa, kRw);
  PageWalk w = Walk(kVa + 0x9A, AccessType::kRead);
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.gpa, kPa + 0x9A);
  EXPECT_EQ(w.page_size, 4096u);
  EXPECT_EQ(w.update_count, 4);
}

TEST_F(PageWalkTest, LargePagesKeepTheLowBitsOfTheAddress) {
  pt_.Map2M(0xFFFF888040000000, 0x200000, kRw);
  PageWalk two = Walk(0xFFFF8880401ABCDE, AccessType::kRead);
  EXPECT_EQ(two.gpa, 0x200000u + 0x1ABCDE);
  EXPECT_EQ(two.page_size, 2u << 20);
  pt_.Map1G(0xFFFF888100000000, 0x40000000, kRw);
  PageWalk one = Walk(0xFFFF888123456789, AccessType::kRead);
  EXPECT_EQ(one.gpa, 0x40000000u + 0x23456789);
  EXPECT_EQ(one.page_size, 1u << 30);
}

TEST_F(PageWalkTest, FiveLevelPagingWalksThePml5) {
  PageTables pt5(ram_, 5, 0x300000);
  s_.cr3 = pt5.cr3();
  s_.cr4 |= cr4::kLa57;
  const uint64_t va = 0xFF5F000000001000;  // 57-bit canonical, PML5 index 0x1F5
  pt5.Map4K(va, kPa, kRw);
  PageWalk w = Walk(va + 8, AccessType::kWrite);
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.gpa, kPa + 8);
  EXPECT_EQ(w.update_count, 5);
}

TEST_F(PageWalkTest, PcidBitsOfCr3AreNotPartOfTheTableAddress) {
  pt_.Map4K(kVa, kPa, kRw);
  s_.cr3 |= 0x123;
  EXPECT_EQ(Walk(kVa, AccessType::kRead).gpa, kPa);
}

TEST_F(PageWalkTest, NotPresentErrorCodes) {
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), 0u);  // nothing mapped at all
  pt_.Map4K(kVa + 0x1000, kPa, kRw);                 // upper levels now exist
  EXPECT_EQ(FaultCode(kVa, AccessType::kWrite), pf::kWrite);
  EXPECT_EQ(FaultCode(kVa, AccessType::kFetch), pf::kFetch);  // NXE is on
  s_.cpl = 3;
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), pf::kUser);
  s_.cpl = 0;
  s_.efer &= ~efer::kNxe;  // no NX and no SMEP: fetches look like reads
  EXPECT_EQ(FaultCode(kVa, AccessType::kFetch), 0u);
}

TEST_F(PageWalkTest, ReservedBitsGiveRsvdFaults) {
  const uint32_t rsvd = pf::kPresent | pf::kRsvd;
  pt_.Map4K(kVa, kPa | (1ull << 46), kRw);  // above MAXPHYADDR = 46
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), rsvd);
  pt_.Map4K(kVa, kPa | (1ull << 52), kRw);  // 62:52 are ignored in 4-level paging
  EXPECT_TRUE(Allowed(kVa, AccessType::kRead));
  pt_.Map4K(kVa, kPa, kRw | kNx);
  s_.efer &= ~efer::kNxe;  // XD is reserved without NXE
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), rsvd);
  s_.efer |= efer::kNxe;
  pt_.Map2M(0xFFFF888040000000, 0x200000 | (1u << 13), kRw);  // 2 MiB page, bit 13
  EXPECT_EQ(FaultCode(0xFFFF888040000000, AccessType::kRead), rsvd);
  pt_.Map1G(0xFFFF888100000000, 0x40000000 | (1u << 29), kRw);  // 1 GiB page, bit 29
  EXPECT_EQ(FaultCode(0xFFFF888100000000, AccessType::kRead), rsvd);
  pt_.SetEntry(kVa, 4, pt_.Entry(kVa, 4) | kPs);  // PS is reserved in a PML4E
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), rsvd);
}

TEST_F(PageWalkTest, WriteProtectDecidesSupervisorWritesToReadOnlyPages) {
  pt_.Map4K(kVa, kPa, 0);
  EXPECT_TRUE(Allowed(kVa, AccessType::kRead));
  EXPECT_EQ(FaultCode(kVa, AccessType::kWrite), pf::kPresent | pf::kWrite);
  s_.cr0 &= ~cr0::kWp;
  EXPECT_TRUE(Allowed(kVa, AccessType::kWrite));
  pt_.Map4K(kVa, kPa, kUs);  // a user page: CPL 3 may never write it
  s_.cpl = 3;
  EXPECT_EQ(FaultCode(kVa, AccessType::kWrite), pf::kPresent | pf::kWrite | pf::kUser);
}

TEST_F(PageWalkTest, ReadOnlyUpperLevelMakesThePageReadOnly) {
  pt_.Map4K(kVa, kPa, kRw);
  pt_.SetEntry(kVa, 3, pt_.Entry(kVa, 3) & ~kRw);
  EXPECT_EQ(FaultCode(kVa, AccessType::kWrite), pf::kPresent | pf::kWrite);
}

TEST_F(PageWalkTest, UserModeCannotTouchSupervisorPages) {
  pt_.Map4K(kVa, kPa, kRw);  // U/S=0 in the leaf
  s_.cpl = 3;
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), pf::kPresent | pf::kUser);
  pt_.Map4K(kVa, kPa, kRw | kUs);
  EXPECT_TRUE(Allowed(kVa, AccessType::kRead));
}

TEST_F(PageWalkTest, SmapBlocksSupervisorDataAccessToUserPagesUnlessAc) {
  pt_.Map4K(kVa, kPa, kRw | kUs);
  EXPECT_TRUE(Allowed(kVa, AccessType::kRead));
  s_.cr4 |= cr4::kSmap;
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), pf::kPresent);
  EXPECT_EQ(FaultCode(kVa, AccessType::kWrite), pf::kPresent | pf::kWrite);
  s_.rflags |= rflags::kAc;  // stac
  EXPECT_TRUE(Allowed(kVa, AccessType::kWrite));
}

TEST_F(PageWalkTest, SmepBlocksSupervisorFetchFromUserPages) {
  pt_.Map4K(kVa, kPa, kUs);
  EXPECT_TRUE(Allowed(kVa, AccessType::kFetch));
  s_.cr4 |= cr4::kSmep;
  EXPECT_EQ(FaultCode(kVa, AccessType::kFetch), pf::kPresent | pf::kFetch);
  s_.rflags |= rflags::kAc;  // AC does not matter to SMEP
  EXPECT_FALSE(Allowed(kVa, AccessType::kFetch));
}

TEST_F(PageWalkTest, NxForbidsFetchesOnly) {
  pt_.Map4K(kVa, kPa, kRw);
  pt_.SetEntry(kVa, 2, pt_.Entry(kVa, 2) | kNx);  // XD in the PDE covers the page
  EXPECT_TRUE(Allowed(kVa, AccessType::kRead));
  EXPECT_TRUE(Allowed(kVa, AccessType::kWrite));
  EXPECT_EQ(FaultCode(kVa, AccessType::kFetch), pf::kPresent | pf::kFetch);
}

TEST_F(PageWalkTest, ProtectionKeysApplyToUserPages) {
  pt_.Map4K(kVa, kPa | (3ull << 59), kRw | kUs);  // key 3
  s_.cr4 |= cr4::kPke;
  s_.pkru = 1u << (2 * 3 + 1);  // WD3
  EXPECT_TRUE(Allowed(kVa, AccessType::kRead));
  EXPECT_EQ(FaultCode(kVa, AccessType::kWrite), pf::kPresent | pf::kWrite | pf::kPk);
  s_.pkru = 1u << (2 * 3);  // AD3
  s_.cpl = 3;
  EXPECT_EQ(FaultCode(kVa, AccessType::kRead), pf::kPresent | pf::kUser | pf::kPk);
  EXPECT_TRUE(Allowed(kVa, AccessType::kFetch));  // keys never apply to fetches
  s_.cr4 &= ~cr4::kPke;
  EXPECT_TRUE(Allowed(kVa, AccessType::kRead));
}

TEST_F(PageWalkTest, AccessedAndDirtyBitsAreSetOnlyAfterASuccessfulWalk) {
  pt_.Map4K(kVa, kPa, kRw);
  PageWalk read = Walk(kVa, AccessType::kRead);
  EXPECT_EQ(pt_.Entry(kVa, 1) & kAcc, 0u);  // Translate writes nothing
  ASSERT_TRUE(SetAccessedDirty(ram_, read).value());
  for (int level = 1; level <= 4; ++level) EXPECT_NE(pt_.Entry(kVa, level) & kAcc, 0u);
  EXPECT_EQ(pt_.Entry(kVa, 1) & kDirty, 0u);
  PageWalk write = Walk(kVa, AccessType::kWrite);
  ASSERT_TRUE(SetAccessedDirty(ram_, write).value());
  EXPECT_NE(pt_.Entry(kVa, 1) & kDirty, 0u);
  EXPECT_EQ(pt_.Entry(kVa, 2) & kDirty, 0u);  // D only in the leaf
}

TEST_F(PageWalkTest, ChangedEntryMakesTheCallerWalkAgain) {
  pt_.Map4K(kVa, kPa, kRw);
  PageWalk w = Walk(kVa, AccessType::kWrite);
  pt_.SetEntry(kVa, 1, 0);  // another vCPU unmapped it meanwhile
  Result<bool> fresh = SetAccessedDirty(ram_, w);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_FALSE(fresh.value());
  EXPECT_EQ(pt_.Entry(kVa, 1), 0u);  // not resurrected with A/D bits
}

TEST_F(PageWalkTest, PageTableOutsideRamIsAnErrorNotAFault) {
  pt_.Map4K(kVa, kPa, kRw);
  pt_.SetEntry(kVa, 2, 0x7FF00000 | kP | kRw);  // the page table lies past the 4 MiB of RAM
  Result<PageWalk> w = Translate(s_, ram_, kVa, AccessType::kRead);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().kind(), ErrorKind::kGuest);
  EXPECT_NE(w.error().message().find("0x7ff00"), std::string::npos);
}

TEST_F(PageWalkTest, PagingOffIsIdentity) {
  s_ = VcpuState{};
  EXPECT_EQ(Walk(0x12345, AccessType::kWrite).gpa, 0x12345u);
}

TEST_F(PageWalkTest, PaePagingHasFourPdptesWithoutAccessRights) {
  PageTables pae(ram_, 3, 0x300000);
  s_.efer = efer::kNxe;  // PAE without long mode
  s_.cr3 = pae.cr3();
  pae.Map4K(0xC0123000, kPa, kRw);
  PageWalk w = Walk(0xC0123004, AccessType::kWrite);
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(w.gpa, kPa + 4);
  EXPECT_EQ(w.update_count, 2);  // PDE and PTE; the PDPTE has no accessed flag
  pae.Map2M(0x80200000, 0x200000, kRw | kNx);
  EXPECT_EQ(Walk(0x80212345, AccessType::kRead).gpa, 0x212345u);
  EXPECT_EQ(FaultCode(0x80212345, AccessType::kFetch), pf::kPresent | pf::kFetch);
  pae.SetEntry(0xC0123000, 3, pae.Entry(0xC0123000, 3) | kRw);  // bit 1 is reserved
  EXPECT_EQ(FaultCode(0xC0123000, AccessType::kRead), pf::kPresent | pf::kRsvd);
  pae.Map4K(0x1000, kPa | (1ull << 55), kRw);  // 62:MAXPHYADDR reserved under PAE
  EXPECT_EQ(FaultCode(0x1000, AccessType::kRead), pf::kPresent | pf::kRsvd);
}

TEST_F(PageWalkTest, ThirtyTwoBitPagingWithAndWithoutPse) {
  PageTables pt32(ram_, 2, 0x300000);
  s_.efer = 0;
  s_.cr4 = cr4::kOsfxsr;
  s_.cr3 = pt32.cr3();
  pt32.Map4K(0xC0001000, kPa, kRw);
  EXPECT_EQ(Walk(0xC0001FFF, AccessType::kWrite).gpa, kPa + 0xFFF);
  EXPECT_EQ(FaultCode(0xC0002000, AccessType::kFetch), 0u);  // no I/D without NX or SMEP
  // A 4 MiB page with PSE-36 bits: PDE bits 20:13 are physical bits 39:32.
  const uint64_t pde = 0x00400000 | (0x5ull << 13) | kPs | kRw | kP;
  pt32.SetEntry(0x80000000, 2, pde);
  s_.cr4 |= cr4::kPse;
  EXPECT_EQ(Walk(0x80012345, AccessType::kRead).gpa, 0x500412345u);
  pt32.SetEntry(0x80000000, 2, pde | (1u << 21));  // reserved
  EXPECT_EQ(FaultCode(0x80000000, AccessType::kRead), pf::kPresent | pf::kRsvd);
  s_.cr4 &= ~cr4::kPse;  // PS is ignored: the PDE points to a page table at 0x400000
  pt32.SetEntry(0x80000000, 2, 0x200000 | kPs | kRw | kP);
  ram_.Put<uint32_t>(0x200000 + 0x12 * 4, 0x7000 | kP);
  EXPECT_EQ(Walk(0x80012345, AccessType::kRead).gpa, 0x7345u);
}

}  // namespace
}  // namespace vmm::compat::pvm
