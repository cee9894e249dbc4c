#include "vmm/vm/boot/elf_symbols.h"

#include <elf.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "base/bytes.h"

namespace vmm::boot {
namespace {

constexpr size_t kMaxSymbols = 1 << 20;  // a distribution vmlinux has about 150k
constexpr size_t kMaxNameLen = 256;

}  // namespace

SymbolTable::SymbolTable(std::vector<Symbol> symbols) : symbols_(std::move(symbols)) {
  std::sort(symbols_.begin(), symbols_.end(),
            [](const Symbol& a, const Symbol& b) { return a.addr < b.addr; });
}

const SymbolTable::Symbol* SymbolTable::Find(uint64_t addr) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), addr,
                             [](uint64_t a, const Symbol& s) { return a < s.addr; });
  if (it == symbols_.begin()) return nullptr;
  --it;
  if (it->size != 0 && addr - it->addr >= it->size) return nullptr;
  return &*it;
}

std::string SymbolTable::Describe(uint64_t addr) const {
  char buf[64];
  const Symbol* s = Find(addr);
  if (s == nullptr) {
    std::snprintf(buf, sizeof(buf), "0x%" PRIx64, addr);
    return buf;
  }
  std::snprintf(buf, sizeof(buf), "+0x%" PRIx64, addr - s->addr);
  return s->name + buf;
}

Result<SymbolTable> ReadElfSymbols(std::span<const uint8_t> file) {
  auto bad = [](const std::string& why) {
    return InvalidArgument("cannot read ELF symbols: " + why);
  };
  if (file.size() < sizeof(Elf64_Ehdr) || std::memcmp(file.data(), ELFMAG, SELFMAG) != 0 ||
      file[EI_CLASS] != ELFCLASS64) {
    return bad("not an ELF64 file");
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof(eh));
  if (eh.e_shentsize != sizeof(Elf64_Shdr) ||
      !InBounds(file.size(), eh.e_shoff, uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr))) {
    return bad("section headers outside the file");
  }
  auto section = [&](uint64_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, file.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof(sh));
    return sh;
  };
  for (uint16_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr symtab = section(i);
    if (symtab.sh_type != SHT_SYMTAB || symtab.sh_link >= eh.e_shnum) continue;
    Elf64_Shdr strtab = section(symtab.sh_link);
    if (!InBounds(file.size(), symtab.sh_offset, symtab.sh_size) ||
        !InBounds(file.size(), strtab.sh_offset, strtab.sh_size)) {
      return bad("symbol table outside the file");
    }
    std::vector<SymbolTable::Symbol> symbols;
    uint64_t count = symtab.sh_size / sizeof(Elf64_Sym);
    for (uint64_t k = 0; k < count && symbols.size() < kMaxSymbols; ++k) {
      Elf64_Sym sym;
      std::memcpy(&sym, file.data() + symtab.sh_offset + k * sizeof(Elf64_Sym), sizeof(sym));
      unsigned type = ELF64_ST_TYPE(sym.st_info);
      if ((type != STT_FUNC && type != STT_NOTYPE) || sym.st_value == 0 ||
          sym.st_name >= strtab.sh_size) {
        continue;
      }
      const char* name =
          reinterpret_cast<const char*>(file.data() + strtab.sh_offset + sym.st_name);
      size_t max = std::min<uint64_t>(strtab.sh_size - sym.st_name, kMaxNameLen);
      size_t len = strnlen(name, max);
      if (len == 0 || len == max) continue;  // empty or unterminated within bounds
      symbols.push_back({sym.st_value, sym.st_size, std::string(name, len)});
    }
    return SymbolTable(std::move(symbols));
  }
  return bad("no symbol table (stripped kernel?)");
}

Result<SymbolTable> ReadSystemMap(std::span<const uint8_t> file) {
  std::vector<SymbolTable::Symbol> symbols;
  size_t pos = 0;
  while (pos < file.size() && symbols.size() < kMaxSymbols) {
    size_t end = pos;
    while (end < file.size() && file[end] != '\n') ++end;
    std::string line(reinterpret_cast<const char*>(file.data() + pos), end - pos);
    pos = end + 1;
    char type = 0;
    char name[kMaxNameLen + 1];
    unsigned long long addr = 0;
    if (std::sscanf(line.c_str(), "%llx %c %256s", &addr, &type, name) != 3) continue;
    if (type != 'T' && type != 't') continue;
    symbols.push_back({addr, 0, name});
  }
  if (symbols.empty())
    return InvalidArgument("cannot read symbols: neither an ELF nor a System.map");
  return SymbolTable(std::move(symbols));
}

Result<SymbolTable> ReadSymbols(std::span<const uint8_t> file) {
  if (file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0) {
    return ReadElfSymbols(file);
  }
  return ReadSystemMap(file);
}

std::vector<std::string> SystemMapCandidates(const std::string& kernel_path) {
  size_t slash = kernel_path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : kernel_path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? kernel_path : kernel_path.substr(slash + 1);
  std::vector<std::string> out;
  for (const char* prefix : {"vmlinuz-", "vmlinux-", "bzImage-"}) {
    size_t n = std::strlen(prefix);
    if (base.size() > n && base.compare(0, n, prefix) == 0) {
      out.push_back(dir + "System.map-" + base.substr(n));
    }
  }
  if (!base.empty()) out.push_back(dir + "System.map");
  return out;
}

}  // namespace vmm::boot
