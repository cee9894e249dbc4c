#include "vmm/vm/compat/kvm_pvm/page_walk.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace vmm::compat::pvm {
namespace {

// Paging-structure entry bits (SDM Vol. 3A §4.3 Table 4-6, §4.4 Tables 4-8..4-11,
// §4.5 Tables 4-14..4-20).
constexpr uint64_t kP = 1ull << 0;
constexpr uint64_t kRw = 1ull << 1;
constexpr uint64_t kUs = 1ull << 2;
constexpr uint64_t kA = 1ull << 5;
constexpr uint64_t kD = 1ull << 6;
constexpr uint64_t kPs = 1ull << 7;
constexpr uint64_t kXd = 1ull << 63;

// Bits lo..hi inclusive; empty when lo > hi.
constexpr uint64_t Bits(unsigned lo, unsigned hi) {
  if (lo > hi) return 0;
  uint64_t upto = hi >= 63 ? ~0ull : (1ull << (hi + 1)) - 1;
  return upto & ~((1ull << lo) - 1);
}

enum class Mode { kOff, k32, kPae, k4, k5 };

Mode ModeOf(const VcpuState& s) {
  if (!s.PagingEnabled()) return Mode::kOff;
  if (!(s.cr4 & cr4::kPae)) return Mode::k32;
  if (!s.LongMode()) return Mode::kPae;
  return (s.cr4 & cr4::kLa57) ? Mode::k5 : Mode::k4;
}

Error NotRam(uint64_t gpa) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "guest page-table entry at gpa 0x%llx is not RAM",
                static_cast<unsigned long long>(gpa));
  return Error(ErrorKind::kGuest, buf);
}

// 4 MiB pages with PSE-36 (SDM Vol. 3A §4.3 Table 4-4): PDE bits (M-20):13 hold physical
// address bits (M-1):32 for M up to 40; the rest of bits 21:13 is reserved.
uint64_t Pse36Reserved(unsigned maxphy) {
  unsigned high_bits = std::min(maxphy, 40u) - 32;
  return Bits(13 + high_bits, 21);
}

// The page-fault error code (SDM Vol. 3A §4.7). I/D is reported only when NX (with PAE) or
// SMEP makes fetches distinguishable.
uint32_t ErrorCode(const VcpuState& s, AccessType access, Mode mode) {
  uint32_t code = 0;
  if (access == AccessType::kWrite) code |= pf::kWrite;
  if (s.cpl == 3) code |= pf::kUser;
  bool nx_active = mode != Mode::k32 && (s.efer & efer::kNxe);
  if (access == AccessType::kFetch && ((s.cr4 & cr4::kSmep) || nx_active)) code |= pf::kFetch;
  return code;
}

// Access rights over the whole walk (SDM Vol. 3A §4.6.1). Returns the extra error-code
// bits, or nullopt when the access is allowed.
std::optional<uint32_t> Violation(const VcpuState& s, AccessType access, Mode mode, bool writable,
                                  bool user_page, bool nx, uint64_t leaf) {
  bool user_access = s.cpl == 3;
  bool bad = false;
  if (access == AccessType::kFetch) {
    bad = nx || (user_access && !user_page) || (!user_access && user_page && (s.cr4 & cr4::kSmep));
  } else {
    bool wp = user_access || (s.cr0 & cr0::kWp);
    bad = (user_access && !user_page) || (access == AccessType::kWrite && !writable && wp) ||
          // SMAP: explicit supervisor data accesses to user pages need RFLAGS.AC (§4.6.1).
          (!user_access && user_page && (s.cr4 & cr4::kSmap) && !(s.rflags & rflags::kAc));
  }
  uint32_t pk = 0;
  // Protection keys: data accesses to user pages under 4/5-level paging (§4.6.2).
  if (access != AccessType::kFetch && user_page && (s.cr4 & cr4::kPke) &&
      (mode == Mode::k4 || mode == Mode::k5)) {
    unsigned key = (leaf >> 59) & 0xF;
    bool ad = (s.pkru >> (2 * key)) & 1;
    bool wd = (s.pkru >> (2 * key + 1)) & 1;
    bool wp = user_access || (s.cr0 & cr0::kWp);
    if (ad || (access == AccessType::kWrite && wd && wp)) pk = pf::kPk;
  }
  if (!bad && pk == 0) return std::nullopt;
  return pf::kPresent | pk;
}

PageWalk Faulted(uint64_t linear, uint32_t code) {
  PageWalk w;
  w.fault = Exception::PageFault(linear, code);
  return w;
}

Result<uint64_t> ReadEntry(const GuestRam& mem, uint64_t gpa, unsigned width) {
  std::span<uint8_t> bytes = mem.Translate(gpa, width);
  if (bytes.size() != width) return NotRam(gpa);
  return LoadEntry(bytes);
}

}  // namespace

Result<PageWalk> Translate(const VcpuState& s, const GuestRam& mem, uint64_t linear,
                           AccessType access) {
  PageWalk w;
  const Mode mode = ModeOf(s);
  if (mode == Mode::kOff) {
    w.gpa = linear;
    w.page_size = 4096;
    return w;
  }
  const bool wide = mode != Mode::k32;  // 8-byte entries
  const unsigned width = wide ? 8 : 4;
  const unsigned maxphy = std::clamp<unsigned>(s.phys_addr_bits, 32, 52);
  const bool nxe = wide && (s.efer & efer::kNxe);
  const uint32_t code = ErrorCode(s, access, mode);
  const int levels = mode == Mode::k32 ? 2 : mode == Mode::kPae ? 3 : mode == Mode::k4 ? 4 : 5;

  // Physical-address bits above MAXPHYADDR are reserved: up to bit 51 in 4/5-level
  // entries (62:52 are ignored), up to bit 62 in PAE entries (§4.4.2, §4.5.4).
  uint64_t high = 0;
  if (wide) high = Bits(maxphy, mode == Mode::kPae ? 62 : 51) | (nxe ? 0 : kXd);

  uint64_t table;
  if (mode == Mode::k32) {
    table = s.cr3 & 0xFFFFF000;
  } else if (mode == Mode::kPae) {
    table = s.cr3 & 0xFFFFFFE0;  // §4.4.1: a 32-byte aligned PDPT
  } else {
    table = s.cr3 & Bits(12, maxphy - 1);  // bits 11:0 are flags or the PCID (§4.5.2)
  }

  bool writable = true, user_page = true, nx = false;
  uint64_t entry = 0;
  unsigned shift = 12;
  for (int level = levels;; --level) {
    uint64_t index;
    if (mode == Mode::k32) {
      shift = 12 + 10 * (level - 1);
      index = (linear >> shift) & 0x3FF;
    } else {
      shift = 12 + 9 * (level - 1);
      index = (linear >> shift) & ((mode == Mode::kPae && level == 3) ? 0x3 : 0x1FF);
    }
    const uint64_t entry_gpa = table + index * width;
    ASSIGN_OR_RETURN(entry, ReadEntry(mem, entry_gpa, width));
    if (!(entry & kP)) return Faulted(linear, code);
    const bool pae_pdpte = mode == Mode::kPae && level == 3;
    bool large = false;
    uint64_t reserved = high;
    if (pae_pdpte) {
      reserved |= kXd | Bits(5, 8) | Bits(1, 2);  // §4.4.1 Table 4-8
    } else if (level >= 4) {
      reserved |= kPs;  // PML5E/PML4E: PS is reserved (Tables 4-14, 4-15)
    } else if (level == 3) {
      large = (entry & kPs) != 0;  // 1 GiB page (Table 4-16)
      if (large) reserved |= Bits(13, 29);
    } else if (level == 2) {
      // PS selects a large page under PAE and 4/5-level paging, and under 32-bit paging
      // only with CR4.PSE (§4.3).
      large = (entry & kPs) && (wide || (s.cr4 & cr4::kPse));
      if (large) reserved |= wide ? Bits(13, 20) : Pse36Reserved(maxphy);
    }
    if (entry & reserved) return Faulted(linear, code | pf::kPresent | pf::kRsvd);
    if (!pae_pdpte) {  // PAE PDPTEs carry no access rights and no accessed flag (§4.4.1)
      writable = writable && (entry & kRw);
      user_page = user_page && (entry & kUs);
      nx = nx || (nxe && (entry & kXd));
      w.updates[w.update_count++] = EntryUpdate{entry_gpa, entry, kA, static_cast<uint8_t>(width)};
    }
    if (level == 1 || large) break;
    table = wide ? (entry & Bits(12, 51)) : (entry & 0xFFFFF000);
  }

  const uint64_t page_size = 1ull << shift;
  uint64_t base;
  if (!wide && page_size == (4ull << 20)) {
    base = (entry & 0xFFC00000) | (((entry >> 13) & 0xFF) << 32);  // PSE-36
  } else if (wide) {
    base = entry & Bits(12, 51) & ~(page_size - 1);
  } else {
    base = entry & 0xFFFFF000;
  }

  if (auto bits = Violation(s, access, mode, writable, user_page, nx, entry)) {
    return Faulted(linear, code | *bits);
  }
  if (access == AccessType::kWrite) w.updates[w.update_count - 1].set |= kD;
  w.gpa = base | (linear & (page_size - 1));
  w.page_size = page_size;
  return w;
}

Result<bool> SetAccessedDirty(const GuestRam& mem, const PageWalk& walk) {
  for (unsigned i = 0; i < walk.update_count; ++i) {
    const EntryUpdate& u = walk.updates[i];
    if ((u.seen & u.set) == u.set) continue;
    std::span<uint8_t> bytes = mem.Translate(u.gpa, u.width);
    if (bytes.size() != u.width) return NotRam(u.gpa);
    ASSIGN_OR_RETURN(bool swapped, CompareExchangeEntry(bytes, u.seen, u.seen | u.set));
    if (!swapped) return false;
  }
  return true;
}

}  // namespace vmm::compat::pvm
