#include "vmm/vm/machine/exit_stats.h"

#include <gtest/gtest.h>

#include <cstring>
#include <initializer_list>
#include <vector>

namespace vmm {
namespace {

kvm_run Reason(uint32_t reason) {
  kvm_run run;
  std::memset(&run, 0, sizeof(run));
  run.exit_reason = reason;
  return run;
}

kvm_run Io(uint16_t port, bool out) {
  kvm_run run = Reason(KVM_EXIT_IO);
  run.io.port = port;
  run.io.direction = out ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN;
  run.io.size = 1;
  run.io.count = 1;
  return run;
}

kvm_run Mmio(uint64_t addr, bool write) {
  kvm_run run = Reason(KVM_EXIT_MMIO);
  run.mmio.phys_addr = addr;
  run.mmio.is_write = write;
  run.mmio.len = 4;
  return run;
}

// The statistics of one vCPU that made `exits`, in order.
ExitStats OneVcpuStats(std::initializer_list<kvm_run> exits) {
  std::vector<VcpuExitCounts> counts(1);
  for (const kvm_run& run : exits) counts[0].Record(run);
  return MergeExitCounts(counts);
}

TEST(ExitStats, CountsByReasonPortAndAddress) {
  std::vector<VcpuExitCounts> counts(1);
  for (int i = 0; i < 5; ++i) counts[0].Record(Io(0x3F8, true));
  counts[0].Record(Io(0x3FD, false));
  counts[0].Record(Mmio(0xD0000000, false));
  counts[0].Record(Mmio(0xD0000000, true));
  counts[0].Record(Reason(KVM_EXIT_HLT));
  counts[0].RecordInterrupted();

  ExitStats s = MergeExitCounts(counts);
  EXPECT_EQ(s.vcpus, 1u);
  EXPECT_EQ(s.exits, 10u);
  ASSERT_EQ(s.by_reason.size(), 4u);
  EXPECT_EQ(s.by_reason[0].key, uint64_t{KVM_EXIT_IO});
  EXPECT_EQ(s.by_reason[0].total(), 6u);
  EXPECT_EQ(s.by_reason[1].key, uint64_t{KVM_EXIT_MMIO});
  ASSERT_EQ(s.io.size(), 2u);
  EXPECT_EQ(s.io[0].key, 0x3F8u);
  EXPECT_EQ(s.io[0].writes, 5u);
  EXPECT_EQ(s.io[0].reads, 0u);
  EXPECT_EQ(s.io[1].key, 0x3FDu);
  EXPECT_EQ(s.io[1].reads, 1u);
  ASSERT_EQ(s.mmio.size(), 1u);
  EXPECT_EQ(s.mmio[0].key, 0xD0000000u);
  EXPECT_EQ(s.mmio[0].reads, 1u);
  EXPECT_EQ(s.mmio[0].writes, 1u);
}

TEST(ExitStats, MergeSumsTheSameKeyAcrossVcpus) {
  std::vector<VcpuExitCounts> counts(3);
  counts[0].Record(Io(0x604, true));
  counts[1].Record(Io(0x604, true));
  counts[1].Record(Io(0x70, true));
  counts[2].Record(Io(0x604, false));
  counts[2].Record(Mmio(0xFED40000, true));
  counts[2].Record(Reason(KVM_EXIT_SHUTDOWN));

  ExitStats s = MergeExitCounts(counts);
  EXPECT_EQ(s.vcpus, 3u);
  EXPECT_EQ(s.exits, 6u);
  ASSERT_EQ(s.io.size(), 2u);
  EXPECT_EQ(s.io[0].key, 0x604u);
  EXPECT_EQ(s.io[0].writes, 2u);
  EXPECT_EQ(s.io[0].reads, 1u);
  EXPECT_EQ(s.io[1].key, 0x70u);
}

TEST(ExitStats, EqualCountsAreOrderedByKey) {
  ExitStats s = OneVcpuStats({Io(0x80, true), Io(0x20, true), Io(0x60, true), Io(0x40, true)});
  ASSERT_EQ(s.io.size(), 4u);
  EXPECT_EQ(s.io[0].key, 0x20u);
  EXPECT_EQ(s.io[3].key, 0x80u);
}

TEST(ExitStats, PortZeroAndAddressZeroAreCountedLikeAnyOther) {
  ExitStats s = OneVcpuStats({Io(0, false), Mmio(0, true)});
  ASSERT_EQ(s.io.size(), 1u);
  EXPECT_EQ(s.io[0].key, 0u);
  ASSERT_EQ(s.mmio.size(), 1u);
  EXPECT_EQ(s.mmio[0].writes, 1u);
}

TEST(ExitStats, MoreKeysThanATableHoldsAreCountedAsUnattributed) {
  std::vector<VcpuExitCounts> counts(1);
  const uint64_t n = 10000;
  for (uint64_t a = 0; a < n; ++a) counts[0].Record(Mmio(0x100000000ull + a * 4, false));
  ExitStats s = MergeExitCounts(counts);
  EXPECT_EQ(s.exits, n);
  EXPECT_LE(s.mmio.size(), AccessCounter::kCapacity);
  EXPECT_GT(s.mmio_unattributed, 0u);
  uint64_t attributed = 0;
  for (const ExitStats::Row& r : s.mmio) attributed += r.total();
  EXPECT_EQ(attributed + s.mmio_unattributed, n);
}

TEST(ExitStats, UnknownReasonsBeyondTheTableAreKept) {
  ExitStats s = OneVcpuStats({Reason(1000), Reason(VcpuExitCounts::kReasons - 1)});
  EXPECT_EQ(s.exits, 2u);
  EXPECT_EQ(s.other_reason, 1u);
  std::string text = FormatExitStats(s, 5);
  EXPECT_NE(text.find("exit reasons >= 64"), std::string::npos) << text;
  EXPECT_NE(text.find("exit reason 63"), std::string::npos) << text;
}

TEST(ExitStats, FormatNamesReasonsAndShowsTheTopN) {
  std::vector<VcpuExitCounts> counts(2);
  for (int i = 0; i < 6; ++i) counts[0].Record(Io(0x3F8, true));
  for (int i = 0; i < 2; ++i) counts[1].Record(Io(0x3FD, false));
  counts[1].Record(Io(0x64, false));
  counts[1].Record(Mmio(0xD0000050, true));
  std::string text = FormatExitStats(MergeExitCounts(counts), 2);
  EXPECT_EQ(text,
            "exit statistics: 10 exits on 2 vCPUs\n"
            "by exit reason:\n"
            "             9  90.00%  KVM_EXIT_IO\n"
            "             1  10.00%  KVM_EXIT_MMIO\n"
            "KVM_EXIT_IO, top 2 of 3 ports:\n"
            "             6  60.00%  0x3f8 (in 0, out 6)\n"
            "             2  20.00%  0x3fd (in 2, out 0)\n"
            "KVM_EXIT_MMIO, top 1 of 1 addresses:\n"
            "             1  10.00%  0xd0000050 (read 0, write 1)\n");
}

TEST(ExitStats, NoExitsIsOneLine) {
  std::vector<VcpuExitCounts> counts(1);
  EXPECT_EQ(FormatExitStats(MergeExitCounts(counts), 10), "exit statistics: 0 exits on 1 vCPU\n");
}

TEST(ExitStats, CountersOfNeighbouringVcpusDoNotShareACacheLine) {
  static_assert(alignof(VcpuExitCounts) >= 64);
  std::vector<VcpuExitCounts> counts(2);
  auto a = reinterpret_cast<uintptr_t>(&counts[0]);
  auto b = reinterpret_cast<uintptr_t>(&counts[1]);
  EXPECT_EQ(a % 64, 0u);
  EXPECT_EQ(b % 64, 0u);
}

}  // namespace
}  // namespace vmm
