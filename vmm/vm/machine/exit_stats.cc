#include "vmm/vm/machine/exit_stats.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>

#include "vmm/vm/machine/exit_dispatch.h"

namespace vmm {
namespace {

size_t Hash(uint64_t key) {
  // Fibonacci hashing: ports and register addresses differ in their low bits.
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 56);
}

std::vector<ExitStats::Row> Sorted(const std::map<uint64_t, ExitStats::Row>& rows) {
  std::vector<ExitStats::Row> out;
  for (const auto& [key, row] : rows) out.push_back(row);
  std::stable_sort(out.begin(), out.end(), [](const ExitStats::Row& a, const ExitStats::Row& b) {
    return a.total() > b.total();
  });
  return out;
}

void MergeAccesses(const AccessCounter& c, std::map<uint64_t, ExitStats::Row>& into) {
  for (const AccessCounter::Slot& s : c.slots()) {
    if (s.total() == 0) continue;
    ExitStats::Row& row = into.try_emplace(s.key, ExitStats::Row{s.key, 0, 0}).first->second;
    row.reads += s.reads;
    row.writes += s.writes;
  }
}

std::string Line(uint64_t n, uint64_t total, const std::string& what) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "  %12" PRIu64 " %6.2f%%  ", n,
                total ? 100.0 * static_cast<double>(n) / static_cast<double>(total) : 0.0);
  return buf + what + "\n";
}

std::string AccessTable(const char* title, const char* key_name, const char* read,
                        const char* write, const std::vector<ExitStats::Row>& rows,
                        uint64_t unattributed, uint64_t exits, size_t top) {
  if (rows.empty() && unattributed == 0) return "";
  std::string s = std::string(title) + ", top " + std::to_string(std::min(top, rows.size())) +
                  " of " + std::to_string(rows.size()) + " " + key_name + ":\n";
  for (size_t i = 0; i < rows.size() && i < top; ++i) {
    char what[96];
    std::snprintf(what, sizeof(what), "0x%" PRIx64 " (%s %" PRIu64 ", %s %" PRIu64 ")", rows[i].key,
                  read, rows[i].reads, write, rows[i].writes);
    s += Line(rows[i].total(), exits, what);
  }
  if (unattributed != 0) {
    s += Line(unattributed, exits,
              std::string("not attributed (a vCPU saw more ") + key_name + " than it tracks)");
  }
  return s;
}

}  // namespace

void AccessCounter::Add(uint64_t key, bool write) {
  size_t h = Hash(key);
  for (size_t i = 0; i < kMaxProbe; ++i) {
    Slot& s = slots_[(h + i) & (kCapacity - 1)];
    if (s.total() == 0) s.key = key;  // a free slot: claim it
    if (s.key != key) continue;
    ++(write ? s.writes : s.reads);
    return;
  }
  ++unattributed_;
}

void VcpuExitCounts::Record(const kvm_run& run) {
  uint32_t reason = run.exit_reason;
  if (reason < kReasons) {
    ++by_reason[reason];
  } else {
    ++other_reason;
  }
  if (reason == KVM_EXIT_IO) {
    io.Add(run.io.port, run.io.direction == KVM_EXIT_IO_OUT);
  } else if (reason == KVM_EXIT_MMIO) {
    mmio.Add(run.mmio.phys_addr, run.mmio.is_write != 0);
  }
}

ExitStats MergeExitCounts(std::span<const VcpuExitCounts> counts) {
  ExitStats out;
  out.vcpus = counts.size();
  std::map<uint64_t, ExitStats::Row> reasons, io, mmio;
  for (const VcpuExitCounts& c : counts) {
    for (size_t r = 0; r < VcpuExitCounts::kReasons; ++r) {
      if (c.by_reason[r] == 0) continue;
      reasons.try_emplace(r, ExitStats::Row{r, 0, 0}).first->second.reads += c.by_reason[r];
      out.exits += c.by_reason[r];
    }
    out.other_reason += c.other_reason;
    out.exits += c.other_reason;
    MergeAccesses(c.io, io);
    MergeAccesses(c.mmio, mmio);
    out.io_unattributed += c.io.unattributed();
    out.mmio_unattributed += c.mmio.unattributed();
  }
  out.by_reason = Sorted(reasons);
  out.io = Sorted(io);
  out.mmio = Sorted(mmio);
  return out;
}

std::string FormatExitStats(const ExitStats& stats, size_t top) {
  std::string s = "exit statistics: " + std::to_string(stats.exits) + " exits on " +
                  std::to_string(stats.vcpus) + (stats.vcpus == 1 ? " vCPU\n" : " vCPUs\n");
  if (stats.exits == 0) return s;
  s += "by exit reason:\n";
  for (const ExitStats::Row& r : stats.by_reason) {
    s += Line(r.total(), stats.exits, ExitReasonName(static_cast<uint32_t>(r.key)));
  }
  if (stats.other_reason != 0) s += Line(stats.other_reason, stats.exits, "exit reasons >= 64");
  s += AccessTable("KVM_EXIT_IO", "ports", "in", "out", stats.io, stats.io_unattributed,
                   stats.exits, top);
  s += AccessTable("KVM_EXIT_MMIO", "addresses", "read", "write", stats.mmio,
                   stats.mmio_unattributed, stats.exits, top);
  return s;
}

}  // namespace vmm
