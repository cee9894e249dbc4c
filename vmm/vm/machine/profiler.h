// Where the guest spends its time: vCPU threads record the guest RIP each time a sampling
// signal interrupts KVM_RUN; at exit the busiest addresses are named from the kernel's
// symbol table. Costs one exit per sample, so the interval is coarse (default 1 ms).
// Besides the whole run, the report shows the latest window of samples (the last complete
// window of `window` samples plus the one filling now), so a boot that stalls late shows
// where it is stuck, not only where the early boot went.
//
//   GuestProfiler prof;          // shared by all vCPU threads
//   prof.Record(regs.rip);       // from a vCPU thread after KVM_RUN returned EINTR
//   std::string top = prof.Report(symbols, 25);
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "vmm/vm/boot/elf_symbols.h"

namespace vmm {

class GuestProfiler {
 public:
  static constexpr uint64_t kDefaultWindow = 20000;  // about 20 s at the default interval

  explicit GuestProfiler(uint64_t window = kDefaultWindow) : window_(window ? window : 1) {}
  void Record(uint64_t rip);
  uint64_t samples() const;
  // The `top` symbols (or addresses, without symbols) by sample count, for the whole run and,
  // once more than one window was recorded, for the latest samples.
  std::string Report(const boot::SymbolTable* symbols, size_t top) const;

 private:
  using Counts = std::unordered_map<uint64_t, uint64_t>;
  static std::string Table(const Counts& counts, uint64_t samples, const boot::SymbolTable* symbols,
                           size_t top);

  mutable std::mutex mu_;
  const uint64_t window_;
  Counts by_rip_;
  Counts current_;   // the window filling now
  Counts previous_;  // the last complete window
  uint64_t samples_ = 0;
  uint64_t current_samples_ = 0;
  uint64_t previous_samples_ = 0;
};

}  // namespace vmm
