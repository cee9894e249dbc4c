// Shared fixtures for the kvm_pvm completer tests: a long-mode vCPU state and a builder of
// guest page tables inside a FakeGuestRam.
//
//   FakeGuestRam ram(kRamSize);
//   PageTables pt(ram);                          // 4-level; tables from kTablesGpa upward
//   pt.Map4K(0xFFFF888000010000, 0x10000, kRw);  // P is implied; upper levels are P|RW|US
//   VcpuState s = LongModeState(pt.cr3());
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <variant>
#include <vector>

#include "base/fake_guest_ram.h"
#include "vmm/vm/compat/kvm_pvm/decoder.h"
#include "vmm/vm/compat/kvm_pvm/emulate.h"
#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"

namespace vmm::compat::pvm::test_util {

inline constexpr uint64_t kRamSize = 4ull << 20;
inline constexpr uint64_t kTablesGpa = 0x100000;  // page tables are carved from here
inline constexpr uint64_t kP = 1, kRw = 2, kUs = 4, kAcc = 1 << 5, kDirty = 1 << 6, kPs = 1 << 7,
                          kNx = 1ull << 63;
inline constexpr uint64_t kKernelRip = 0xFFFFFFFF81000000;

inline VcpuState LongModeState(uint64_t cr3 = kTablesGpa) {
  VcpuState s;
  s.cr0 = 1 | cr0::kMp | cr0::kNe | cr0::kWp | cr0::kPg;  // PE MP NE WP PG
  s.cr3 = cr3;
  s.cr4 = cr4::kPae | cr4::kOsfxsr | cr4::kOsxsave;
  s.efer = efer::kLme | efer::kLma | efer::kNxe;
  s.cs_l = true;
  s.cpl = 0;
  s.rip = kKernelRip;
  s.rflags = 0x2;
  s.phys_addr_bits = 46;
  return s;
}

class PageTables {
 public:
  // levels: 4 or 5 (CR4.LA57) for 8-byte entries; 3 for PAE, 2 for 32-bit paging.
  explicit PageTables(FakeGuestRam& mem, int levels = 4, uint64_t root = kTablesGpa)
      : mem_(mem), levels_(levels), root_(root), next_(root + 4096) {}

  uint64_t cr3() const { return root_; }

  void Map4K(uint64_t va, uint64_t pa, uint64_t flags) { Leaf(va, 1, pa | flags | kP); }
  void Map2M(uint64_t va, uint64_t pa, uint64_t flags) { Leaf(va, 2, pa | flags | kP | kPs); }
  void Map1G(uint64_t va, uint64_t pa, uint64_t flags) { Leaf(va, 3, pa | flags | kP | kPs); }
  // The gpa of the entry at `level` (1 = PTE) that translates `va`, creating tables.
  uint64_t EntryGpa(uint64_t va, int level) {
    uint64_t table = root_;
    for (int l = levels_; l > level; --l) {
      uint64_t gpa = table + Index(va, l) * Width();
      uint64_t e = Read(gpa);
      if (!(e & kP)) {
        // PAE PDPTEs have no R/W or U/S: those bits are reserved there (SDM Vol. 3A §4.4.1).
        e = Alloc() | kP | ((levels_ == 3 && l == 3) ? 0 : kRw | kUs);
        Write(gpa, e);
      }
      table = e & (Width() == 4 ? 0xFFFFF000ull : 0x000FFFFFFFFFF000ull);
    }
    return table + Index(va, level) * Width();
  }
  uint64_t Entry(uint64_t va, int level) { return Read(EntryGpa(va, level)); }
  void SetEntry(uint64_t va, int level, uint64_t value) { Write(EntryGpa(va, level), value); }

 private:
  unsigned Width() const { return levels_ == 2 ? 4 : 8; }
  uint64_t Index(uint64_t va, int level) const {
    if (levels_ == 2) return (va >> (12 + 10 * (level - 1))) & 0x3FF;
    if (levels_ == 3 && level == 3) return (va >> 30) & 3;
    return (va >> (12 + 9 * (level - 1))) & 0x1FF;
  }
  uint64_t Read(uint64_t gpa) {
    return Width() == 4 ? mem_.Get<uint32_t>(gpa) : mem_.Get<uint64_t>(gpa);
  }
  void Write(uint64_t gpa, uint64_t v) {
    if (Width() == 4) {
      mem_.Put<uint32_t>(gpa, static_cast<uint32_t>(v));
    } else {
      mem_.Put<uint64_t>(gpa, v);
    }
  }
  uint64_t Alloc() {
    uint64_t t = next_;
    next_ += 4096;
    return t;
  }
  void Leaf(uint64_t va, int level, uint64_t entry) { Write(EntryGpa(va, level), entry); }

  FakeGuestRam& mem_;
  int levels_;
  uint64_t root_;
  uint64_t next_;
};

// Decodes `bytes` (which must decode) and emulates them.
inline Result<Outcome> DecodeAndEmulate(std::vector<uint8_t> bytes, VcpuState& s,
                                        const GuestRam& mem) {
  DecodeResult r = Decode(bytes, s);
  if (auto* u = std::get_if<Undecodable>(&r)) {
    ADD_FAILURE() << u->Message();
    return u->ToError();
  }
  return Emulate(std::get<Decoded>(r), s, mem);
}

inline Outcome Completed() { return Outcome{}; }
inline Outcome Raised(Exception e) {
  Outcome o;
  o.kind = Outcome::Kind::kException;
  o.exception = e;
  return o;
}
inline Outcome Raised(Vector v) { return Raised(Exception::Fault(v)); }
inline Outcome RaisedWithCode(Vector v, uint32_t code) {
  return Raised(Exception::WithCode(v, code));
}

}  // namespace vmm::compat::pvm::test_util
