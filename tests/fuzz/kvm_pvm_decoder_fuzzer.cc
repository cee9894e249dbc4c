// The kvm_pvm instruction completer: guest-controlled instruction bytes, register state and
// page tables through Decode -> Emulate (and FetchInstruction).
//
// Input: a Header (register state and flags), 15 instruction bytes, then the image of a
// 64 KiB guest RAM that holds whatever page tables the fuzzer wrote. Flags help it reach
// deep paths: force 64-bit paging mode, keep addresses inside the small RAM, fetch the
// instruction from guest memory instead.
//
// Invariants: a decoded length is 1..15 and within the bytes given; every host span handed
// out lies inside the fake RAM; an instruction that did not complete changes no guest
// memory except accessed/dirty bits of paging entries; a fault leaves the registers and RIP
// alone; a completed instruction advances RIP by its length.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <variant>
#include <vector>

#include "base/fake_guest_ram.h"
#include "tests/fuzz/fuzz_check.h"
#include "vmm/vm/compat/kvm_pvm/decoder.h"
#include "vmm/vm/compat/kvm_pvm/emulate.h"
#include "vmm/vm/compat/kvm_pvm/linear_memory.h"

namespace {

using namespace vmm::compat::pvm;  // NOLINT: a fuzzer
using vmm::FakeGuestRam;
using vmm::GuestRam;

constexpr uint64_t kRam = 64 * 1024;

struct Header {
  uint64_t gpr[16];
  uint64_t rip, rflags, cr0, cr3, cr4, efer, fs_base, gs_base;
  uint32_t mxcsr, mxcsr_mask, pkru;
  uint16_t fsw;
  uint8_t cpl, phys_bits, flags, insn_len;
};
static_assert(sizeof(Header) == 216);

enum Flags : uint8_t {
  kForceLongMode = 1 << 0,    // PG, PAE, LME/LMA, CS.L
  kSmallAddresses = 1 << 1,   // GPRs, bases, RIP and CR3 masked into the fake RAM
  kFetchFromMemory = 1 << 2,  // the instruction comes from FetchInstruction
};

// Bytes that changed must be accessed/dirty bits being set in byte 0 of an aligned entry.
void CheckOnlyAccessedDirtyChanged(std::span<const uint8_t> before,
                                   std::span<const uint8_t> after) {
  if (std::memcmp(before.data(), after.data(), before.size()) == 0) return;
  for (size_t i = 0; i < before.size(); ++i) {
    uint8_t diff = before[i] ^ after[i];
    if (diff == 0) continue;
    CHECK(i % 4 == 0);
    CHECK((diff & ~0x60) == 0);
    CHECK((before[i] & diff) == 0);
  }
}

VcpuState StateFrom(const Header& h) {
  VcpuState s;
  std::memcpy(s.gpr.data(), h.gpr, sizeof(h.gpr));
  s.rip = h.rip;
  s.rflags = h.rflags;
  s.cr0 = h.cr0;
  s.cr3 = h.cr3;
  s.cr4 = h.cr4;
  s.efer = h.efer;
  s.fs_base = h.fs_base;
  s.gs_base = h.gs_base;
  s.mxcsr = h.mxcsr;
  s.mxcsr_mask = h.mxcsr_mask;
  s.pkru = h.pkru;
  s.fpu_status = h.fsw;
  s.cpl = h.cpl & 3;
  s.phys_addr_bits = h.phys_bits;
  s.cs_l = (h.flags & 0x80) != 0;
  if (h.flags & kForceLongMode) {
    s.cr0 |= cr0::kPg | 1;
    s.cr4 |= cr4::kPae;
    s.efer |= efer::kLme | efer::kLma;
    s.cs_l = true;
  }
  if (h.flags & kSmallAddresses) {
    for (uint64_t& r : s.gpr) r &= kRam - 1;
    s.rip &= kRam - 1;
    s.fs_base &= kRam - 1;
    s.gs_base &= kRam - 1;
    s.cr3 &= kRam - 1;
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Header h{};
  std::memcpy(&h, data, std::min(size, sizeof(h)));
  size_t off = std::min(size, sizeof(h));
  uint8_t insn[kMaxInstructionLength] = {};
  size_t insn_avail = std::min(size - off, kMaxInstructionLength);
  std::memcpy(insn, data + off, insn_avail);
  off += insn_avail;

  // Reused across runs: a fresh 64 KiB buffer per run costs more than the rest together.
  static FakeGuestRam ram(kRam);
  static std::vector<uint8_t> before(kRam);
  const size_t image = std::min<size_t>(size - off, kRam);
  std::memcpy(ram.At(0, kRam).data(), data + off, image);
  std::memset(ram.At(0, kRam).data() + image, 0, kRam - image);
  // GuestRam is not virtual: the bounds of what the code under test touches are the fake's
  // own (one heap buffer of exactly kRam bytes, which the fuzzer's sanitizer watches).
  const GuestRam& mem = ram;
  VcpuState s = StateFrom(h);

  // The decoder alone, on the raw bytes, in both modes.
  std::span<const uint8_t> raw(data, size);
  for (bool long_mode : {false, true}) {
    VcpuState m = s;
    m.cs_l = long_mode;
    m.efer |= long_mode ? efer::kLma : 0;
    DecodeResult r = Decode(raw, m);
    if (auto* d = std::get_if<Decoded>(&r)) {
      CHECK(d->length >= 1 && d->length <= kMaxInstructionLength && d->length <= size);
      CHECK(std::memcmp(d->bytes.data(), data, d->length) == 0);
    } else {
      CHECK(std::get<Undecodable>(r).size <= kMaxInstructionLength);
      CHECK(!std::get<Undecodable>(r).Message().empty());
    }
  }

  std::span<const uint8_t> bytes(insn, std::min<size_t>(h.insn_len, insn_avail));
  FetchedInstruction fetched;
  if (h.flags & kFetchFromMemory) {
    auto f = FetchInstruction(s, mem);
    if (!f.has_value()) return 0;
    fetched = f.value();
    CHECK(fetched.size <= kMaxInstructionLength);
    CHECK(!fetched.fault || fetched.size < kMaxInstructionLength);
    bytes = std::span<const uint8_t>(fetched.bytes.data(), fetched.size);
  }

  DecodeResult r = Decode(bytes, s);
  auto* d = std::get_if<Decoded>(&r);
  if (d == nullptr) return 0;
  CHECK(d->length >= 1 && d->length <= kMaxInstructionLength);
  CHECK(d->length <= bytes.size());

  std::memcpy(before.data(), ram.At(0, kRam).data(), kRam);
  const VcpuState old = s;
  vmm::Result<Outcome> out = Emulate(*d, s, mem);
  if (!out.has_value()) {
    CHECK(s.gpr == old.gpr && s.rip == old.rip && s.rflags == old.rflags);
    CheckOnlyAccessedDirtyChanged(before, ram.At(0, kRam));
    return 0;
  }
  const Outcome& o = out.value();
  const bool trap = o.kind == Outcome::Kind::kException &&
                    (o.exception.vector == Vector::kBp || o.exception.vector == Vector::kDb);
  if (o.kind == Outcome::Kind::kCompleted || trap) {
    CHECK(s.rip == old.rip + d->length);
    CHECK((s.rflags & rflags::kRf) == 0);
  } else {
    CHECK(s.gpr == old.gpr && s.rip == old.rip && s.rflags == old.rflags);
    CHECK(s.mxcsr == old.mxcsr);
    CheckOnlyAccessedDirtyChanged(before, ram.At(0, kRam));
  }
  if (o.kind == Outcome::Kind::kException && o.exception.vector == Vector::kPf) {
    CHECK(s.cr2 == o.exception.cr2 && o.exception.has_error_code);
  }
  if (o.kind == Outcome::Kind::kNeedsFpuState) {
    CHECK(NeedsFpuState(d->op));
    CHECK(o.fpu_linear % 64 == 0 && IsCanonical(s, o.fpu_linear));
  }
  if (o.mxcsr_written) {
    const uint32_t allowed = s.mxcsr_mask != 0 ? s.mxcsr_mask : 0xFFBF;
    CHECK(d->op == Op::kLdmxcsr && (s.mxcsr & ~allowed) == 0);
  }
  return 0;
}
