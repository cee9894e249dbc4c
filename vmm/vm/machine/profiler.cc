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
  if (current_samples_ == window_) {
    previous_ = std::move(current_);
    previous_samples_ = current_samples_;
    current_ = {};
    current_samples_ = 0;
  }
  ++current_[rip];
  ++current_samples_;
}

uint64_t GuestProfiler::samples() const {
  std::lock_guard<std::mutex> guard(mu_);
  return samples_;
}

std::string GuestProfiler::Report(const boot::SymbolTable* symbols, size_t top) const {
  std::lock_guard<std::mutex> guard(mu_);
  std::string out = "profile: " + std::to_string(samples_) + " samples of the guest RIP\n";
  out += Table(by_rip_, samples_, symbols, top);
  if (previous_samples_ != 0) {
    Counts latest = previous_;
    for (const auto& [rip, n] : current_) latest[rip] += n;
    const uint64_t n = previous_samples_ + current_samples_;
    out += "profile: the latest " + std::to_string(n) + " samples\n";
    out += Table(latest, n, symbols, top);
  }
  return out;
}

std::string GuestProfiler::Table(const Counts& counts, uint64_t samples,
                                 const boot::SymbolTable* symbols, size_t top) {
  std::map<std::string, uint64_t> by_name;
  for (const auto& [rip, n] : counts) {
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
  std::string out;
  for (size_t i = 0; i < rows.size() && i < top; ++i) {
    char line[64];
    std::snprintf(
        line, sizeof(line), "  %6.2f%% %8" PRIu64 "  ",
        samples ? 100.0 * static_cast<double>(rows[i].first) / static_cast<double>(samples) : 0.0,
        rows[i].first);
    out += line + rows[i].second + "\n";
  }
  return out;
}

}  // namespace vmm
