// Where the guest spends its time: vCPU threads record the guest RIP each time a sampling
// signal interrupts KVM_RUN; at exit the busiest addresses are named from the kernel's
// symbol table. Costs one exit per sample, so the interval is coarse (default 1 ms).
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
  void Record(uint64_t rip);
  uint64_t samples() const;
  // The `top` symbols (or addresses, without symbols) by sample count.
  std::string Report(const boot::SymbolTable* symbols, size_t top) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, uint64_t> by_rip_;
  uint64_t samples_ = 0;
};

}  // namespace vmm
