// Where the exits go (`vmm run --exit-stats`, and with --profile): per vCPU, the number of
// exits by KVM exit reason, and for KVM_EXIT_IO by port, for KVM_EXIT_MMIO by address.
// Each vCPU thread owns one VcpuExitCounts and only adds to it: fixed-size tables, no
// locks, no atomics, no allocation on the vCPU path. The main thread reads them only after
// joining the vCPU threads (the join orders the writes before the reads) and merges them.
//
//   std::vector<VcpuExitCounts> counts(num_vcpus);   // before the vCPU threads start
//   counts[i].Record(*vcpu.run_page());               // vCPU thread i, after each KVM_RUN
//   counts[i].RecordInterrupted();                     // KVM_RUN returned EINTR
//   std::string table = FormatExitStats(MergeExitCounts(counts), 10);   // after the join
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vmm {

// Counts of accesses by key (a port or a guest-physical address). Open addressing over a
// fixed table with a bounded probe: a key that finds no slot is counted as unattributed,
// so a guest touching many addresses costs neither memory nor time.
class AccessCounter {
 public:
  static constexpr size_t kCapacity = 256;  // a power of two
  static constexpr size_t kMaxProbe = 16;
  struct Slot {
    uint64_t key = 0;
    uint64_t reads = 0;
    uint64_t writes = 0;
    uint64_t total() const { return reads + writes; }
  };

  void Add(uint64_t key, bool write);
  // Every slot; those with total() == 0 are unused.
  std::span<const Slot> slots() const { return slots_; }
  uint64_t unattributed() const { return unattributed_; }

 private:
  std::array<Slot, kCapacity> slots_{};
  uint64_t unattributed_ = 0;
};

// One vCPU thread's counts; cache-line aligned so that neighbouring vCPUs' counters do not
// share a line.
struct alignas(64) VcpuExitCounts {
  static constexpr size_t kReasons = 64;  // KVM exit reasons 0..63; more in `other_reason`
  std::array<uint64_t, kReasons> by_reason{};
  uint64_t other_reason = 0;
  AccessCounter io;    // KVM_EXIT_IO by port
  AccessCounter mmio;  // KVM_EXIT_MMIO by guest-physical address

  void Record(const kvm_run& run);
  // KVM_RUN returned EINTR (a kick or a profiling sample): counted as KVM_EXIT_INTR, since
  // KVM does not always set exit_reason then (immediate_exit).
  void RecordInterrupted() { ++by_reason[KVM_EXIT_INTR]; }
};

struct ExitStats {
  struct Row {
    uint64_t key;  // exit reason, port or address
    uint64_t reads;
    uint64_t writes;
    uint64_t total() const { return reads + writes; }
  };
  size_t vcpus = 0;
  uint64_t exits = 0;
  std::vector<Row> by_reason;  // key = reason; reads holds the count; highest count first
  std::vector<Row> io;         // highest count first, then by key
  std::vector<Row> mmio;
  uint64_t other_reason = 0;  // exits with a reason >= VcpuExitCounts::kReasons
  uint64_t io_unattributed = 0;
  uint64_t mmio_unattributed = 0;
};

ExitStats MergeExitCounts(std::span<const VcpuExitCounts> counts);

// A table for a person: every exit reason seen, then the `top` ports and MMIO addresses.
std::string FormatExitStats(const ExitStats& stats, size_t top);

}  // namespace vmm
