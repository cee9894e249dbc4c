#include "vmm/vm/compat/kvm_pvm/linear_memory.h"

#include <algorithm>
#include <cstdio>

namespace vmm::compat::pvm {
namespace {

constexpr uint64_t kPage = 4096;
// Each failed attempt has set at least one A/D bit, so without a concurrent writer the
// walk settles well before this; with one, we give up rather than spin.
constexpr int kMaxAttempts = 32;

Error NotRam(uint64_t linear, uint64_t gpa, uint64_t len) {
  char buf[128];
  std::snprintf(buf, sizeof(buf),
                "guest linear 0x%llx maps to gpa 0x%llx (+0x%llx), which is not RAM",
                static_cast<unsigned long long>(linear), static_cast<unsigned long long>(gpa),
                static_cast<unsigned long long>(len));
  return Error(ErrorKind::kGuest, buf);
}

}  // namespace

bool IsCanonical(const VcpuState& s, uint64_t linear) {
  unsigned bits = (s.cr4 & cr4::kLa57) ? 57 : 48;
  auto sext = static_cast<int64_t>(linear << (64 - bits)) >> (64 - bits);
  return static_cast<uint64_t>(sext) == linear;
}

Result<Mapping> LinearMemory::Map(uint64_t linear, uint64_t len, AccessType access,
                                  Vector non_canonical) {
  Mapping m;
  if (len == 0) return m;
  if (len > kMaxAccess) return Error(ErrorKind::kInternal, "linear access larger than 64 KiB");
  const bool long_mode = s_.LongMode();
  const uint64_t wrap = long_mode ? ~0ull : 0xFFFFFFFFull;
  linear &= wrap;
  if (long_mode && (!IsCanonical(s_, linear) || !IsCanonical(s_, linear + len - 1))) {
    m.fault = Exception::WithCode(non_canonical, 0);
    return m;
  }
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    std::vector<PageWalk> walks;
    m.pieces.clear();
    for (uint64_t off = 0; off < len;) {
      const uint64_t la = (linear + off) & wrap;
      const uint64_t chunk = std::min(len - off, kPage - (la & (kPage - 1)));
      ASSIGN_OR_RETURN(PageWalk w, Translate(s_, mem_, la, access));
      if (w.fault) {
        m.pieces.clear();
        m.fault = w.fault;
        return m;
      }
      std::span<uint8_t> host = mem_.Translate(w.gpa, chunk);
      if (host.size() != chunk) return NotRam(la, w.gpa, chunk);
      m.pieces.push_back(host);
      walks.push_back(w);
      off += chunk;
    }
    bool fresh = true;
    for (const PageWalk& w : walks) {
      ASSIGN_OR_RETURN(fresh, SetAccessedDirty(mem_, w));
      if (!fresh) break;
    }
    if (fresh) return m;
  }
  return Error(ErrorKind::kGuest, "guest page tables kept changing during emulation");
}

void ReadMapped(const Mapping& m, std::span<uint8_t> out) {
  size_t off = 0;
  for (std::span<uint8_t> piece : m.pieces) {
    size_t n = std::min(piece.size(), out.size() - off);
    CopyFromGuest(piece.first(n), out.subspan(off, n));
    off += n;
  }
}

void WriteMapped(const Mapping& m, std::span<const uint8_t> in) {
  size_t off = 0;
  for (std::span<uint8_t> piece : m.pieces) {
    size_t n = std::min(piece.size(), in.size() - off);
    CopyToGuest(piece.first(n), in.subspan(off, n));
    off += n;
  }
}

Result<Fault> LinearMemory::Read(uint64_t linear, std::span<uint8_t> out, AccessType access,
                                 Vector non_canonical) {
  ASSIGN_OR_RETURN(Mapping m, Map(linear, out.size(), access, non_canonical));
  if (m.fault) return m.fault;
  ReadMapped(m, out);
  return Fault{};
}

Result<Fault> LinearMemory::Write(uint64_t linear, std::span<const uint8_t> in,
                                  Vector non_canonical) {
  ASSIGN_OR_RETURN(Mapping m, Map(linear, in.size(), AccessType::kWrite, non_canonical));
  if (m.fault) return m.fault;
  WriteMapped(m, in);
  return Fault{};
}

Result<FetchedInstruction> FetchInstruction(const VcpuState& s, const GuestRam& mem) {
  FetchedInstruction f;
  LinearMemory lm(s, mem);
  // In 64-bit mode the CS base is ignored (SDM Vol. 1 §3.4.2.1).
  uint64_t la = s.In64BitMode() ? s.rip : s.cs_base + s.rip;
  if (!s.LongMode()) la &= 0xFFFFFFFF;
  const uint64_t first = std::min<uint64_t>(f.bytes.size(), kPage - (la & (kPage - 1)));
  ASSIGN_OR_RETURN(Fault fault, lm.Read(la, std::span(f.bytes).first(first), AccessType::kFetch));
  if (fault) {
    f.fault = fault;
    return f;
  }
  f.size = static_cast<uint8_t>(first);
  if (first == f.bytes.size()) return f;
  auto rest = lm.Read(la + first, std::span(f.bytes).subspan(first), AccessType::kFetch);
  if (!rest.has_value()) return f;  // the next page is not RAM: the bytes just end
  if (rest.value()) {
    f.fault = rest.value();
  } else {
    f.size = static_cast<uint8_t>(f.bytes.size());
  }
  return f;
}

}  // namespace vmm::compat::pvm
