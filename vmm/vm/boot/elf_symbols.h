// Function symbols of an ELF64 file (a vmlinux) or a System.map, for naming guest RIPs in profiles
// and error messages. The file is parsed defensively like any kernel image (fuzzed).
//
//   ASSIGN_OR_RETURN(SymbolTable syms, ReadElfSymbols(bytes));
//   std::string where = syms.Describe(rip);   // "do_idle+0x2a" or "0xffffffff81000000"
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmm::boot {

class SymbolTable {
 public:
  struct Symbol {
    uint64_t addr;
    uint64_t size;
    std::string name;
  };
  explicit SymbolTable(std::vector<Symbol> symbols);
  size_t size() const { return symbols_.size(); }
  // The symbol containing addr (or the nearest one below it when sizes are unknown).
  const Symbol* Find(uint64_t addr) const;
  std::string Describe(uint64_t addr) const;

 private:
  std::vector<Symbol> symbols_;  // sorted by address
};

// Fails if the file is not an ELF64 or has no symbol table (a stripped kernel).
Result<SymbolTable> ReadElfSymbols(std::span<const uint8_t> file);
// A System.map ("ffffffff81000000 T _text" per line; text symbols only), as Debian ships
// beside a stripped kernel.
Result<SymbolTable> ReadSystemMap(std::span<const uint8_t> file);
// An ELF with symbols, else a System.map.
Result<SymbolTable> ReadSymbols(std::span<const uint8_t> file);

// Where a System.map of `kernel_path` would sit, most specific first: for
// "/boot/vmlinuz-6.1.0-28-cloud-amd64" "/boot/System.map-6.1.0-28-cloud-amd64" (Debian's
// /boot), then "System.map" in the kernel's directory (build/default-guest/). Pure: the
// caller checks which exist.
std::vector<std::string> SystemMapCandidates(const std::string& kernel_path);

}  // namespace vmm::boot
