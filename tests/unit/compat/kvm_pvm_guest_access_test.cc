#include "vmm/vm/compat/kvm_pvm/guest_access.h"

#include <gtest/gtest.h>

#include <array>

#include "tests/unit/compat/pvm_test_util.h"
#include "vmm/vm/compat/kvm_pvm/linear_memory.h"
#include "vmm/vm/memory/guest_memory.h"

namespace vmm::compat::pvm {
namespace {

using namespace test_util;  // NOLINT: test fixtures

TEST(PvmGuestAccess, ViewOverRealGuestMemoryStopsAtTheEndOfRam) {
  auto mem = GuestMemory::Create(32ull << 20);
  ASSERT_TRUE(mem.has_value()) << mem.error().ToString();
  const GuestRam& view = mem->ram();
  EXPECT_EQ(view.Translate(0x1000, 16).data(), mem->host_base() + 0x1000);
  EXPECT_TRUE(view.Translate((32ull << 20) - 8, 16).empty());
  EXPECT_TRUE(view.Translate(0xFEE00000, 4).empty());  // MMIO
  EXPECT_TRUE(view.Translate(~0ull - 4, 16).empty());  // wraps
}

TEST(PvmGuestAccess, EmulationThroughTheRealMemoryView) {
  auto mem = GuestMemory::Create(32ull << 20);
  ASSERT_TRUE(mem.has_value());
  const GuestRam& view = mem->ram();
  // Identity-map the first 2 MiB with one large page, as early boot code does.
  uint64_t tables[3] = {0x1000, 0x2000, 0x3000};
  ASSERT_TRUE(mem->WriteObj(tables[0], tables[1] | kP | kRw).has_value());
  ASSERT_TRUE(mem->WriteObj(tables[1], tables[2] | kP | kRw).has_value());
  ASSERT_TRUE(mem->WriteObj(tables[2], uint64_t{kP | kRw | kPs}).has_value());
  ASSERT_TRUE(mem->WriteObj(0x8000, uint64_t{7}).has_value());
  VcpuState s = LongModeState(tables[0]);
  s.gpr[kRdi] = 0x8000;
  Result<Outcome> o = DecodeAndEmulate({0xF3, 0x48, 0x0F, 0xB8, 0x07}, s, view);
  ASSERT_TRUE(o.has_value()) << o.error().message();
  EXPECT_EQ(o.value(), Completed());
  EXPECT_EQ(s.gpr[kRax], 3u);
  uint64_t pde = 0;
  ASSERT_TRUE(mem->Read(tables[2], std::span(reinterpret_cast<uint8_t*>(&pde), 8)).has_value());
  EXPECT_EQ(pde & kAcc, kAcc);
}

TEST(PvmGuestAccess, CopiesInBothDirections) {
  alignas(8) std::array<uint8_t, 12> guest{};
  const std::array<uint8_t, 8> in = {1, 2, 3, 4, 5, 6, 7, 8};
  CopyToGuest(std::span(guest).first(8), in);                           // aligned: one 8-byte store
  CopyToGuest(std::span(guest).subspan(9, 3), std::span(in).first(3));  // odd size: bytes
  std::array<uint8_t, 8> out{};
  CopyFromGuest(std::span(guest).first(8), out);
  EXPECT_EQ(out, in);
  EXPECT_EQ(guest[9], 1);
  EXPECT_EQ(guest[11], 3);
}

TEST(PvmGuestAccess, EntryAccessNeedsNaturalAlignment) {
  alignas(8) std::array<uint8_t, 16> buf{};
  EXPECT_TRUE(LoadEntry(std::span(buf).first(8)).has_value());
  EXPECT_TRUE(LoadEntry(std::span(buf).subspan(4, 4)).has_value());
  EXPECT_FALSE(LoadEntry(std::span(buf).subspan(4, 8)).has_value());
  EXPECT_FALSE(LoadEntry(std::span(buf).first(2)).has_value());
  EXPECT_TRUE(CompareExchangeEntry(std::span(buf).first(8), 0, 0x21).value());
  EXPECT_FALSE(CompareExchangeEntry(std::span(buf).first(8), 0, 0x61).value());
  EXPECT_EQ(LoadEntry(std::span(buf).first(8)).value(), 0x21u);
  EXPECT_FALSE(CompareExchangeEntry(std::span(buf).subspan(2, 4), 0, 1).has_value());
}

TEST(PvmGuestAccess, Cmpxchg16bRefusesAMisalignedHostAddress) {
  alignas(16) std::array<uint8_t, 32> buf{};
  EXPECT_FALSE(CompareExchange16(std::span(buf).subspan(8, 16), 0, 0, 1, 1).has_value());
  Result<Cmpxchg16Result> ok = CompareExchange16(std::span(buf).first(16), 0, 0, 5, 6);
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(ok->swapped);
  Result<Cmpxchg16Result> miss = CompareExchange16(std::span(buf).first(16), 0, 0, 7, 8);
  EXPECT_FALSE(miss->swapped);
  EXPECT_EQ(miss->old_lo, 5u);
  EXPECT_EQ(miss->old_hi, 6u);
}

}  // namespace
}  // namespace vmm::compat::pvm
