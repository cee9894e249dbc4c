#include "vmm/vm/machine/profiler.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <vector>

namespace vmm {

void GuestProfiler::Record(uint64_t rip) {
  std::lock_guard<std::mutex> guard(mu_);
  ++by_rip_[rip];
  ++samples_;
}

uint64_t GuestProfiler::samples() const {
  std::lock_guard<std::mutex> guard(mu_);
  return samples_;
}

std::string GuestProfiler::Report(const boot::SymbolTable* symbols, size_t top) const {
  std::lock_guard<std::mutex> guard(mu_);
  std::map<std::string, uint64_t> by_name;
  for (const auto& [rip, n] : by_rip_) {
    std::string name;
    const boot::SymbolTable::Symbol* s = symbols ? symbols->Find(rip) : nullptr;
    if (s != nullptr) {
      name = s->name;
    } else {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "0x%" PRIx64, rip);
      name = buf;
    }
    by_name[name] += n;
  }
  std::vector<std::pair<uint64_t, std::string>> rows;
  for (auto& [name, n] : by_name) rows.emplace_back(n, name);
  std::sort(rows.rbegin(), rows.rend());
  std::string out = "profile: " + std::to_string(samples_) + " samples of the guest RIP\n";
  for (size_t i = 0; i < rows.size() && i < top; ++i) {
    char line[64];
    std::snprintf(
        line, sizeof(line), "  %6.2f%% %8" PRIu64 "  ",
        samples_ ? 100.0 * static_cast<double>(rows[i].first) / static_cast<double>(samples_) : 0.0,
        rows[i].first);
    out += line + rows[i].second + "\n";
  }
  return out;
}

}  // namespace vmm
