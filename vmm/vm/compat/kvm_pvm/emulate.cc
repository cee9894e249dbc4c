#include "vmm/vm/compat/kvm_pvm/emulate.h"

#include <bit>
#include <cstring>

#include "vmm/vm/compat/kvm_pvm/linear_memory.h"

namespace vmm::compat::pvm {
namespace {

constexpr uint64_t kDr6Bs = 1ull << 14;         // single step (SDM Vol. 3A §17.2.3)
constexpr uint16_t kFswEs = 1u << 7;            // x87 error summary (SDM Vol. 1 §8.1.3)
constexpr uint32_t kDefaultMxcsrMask = 0xFFBF;  // when FXSAVE reports 0 (Vol. 1 §11.6.6)

Outcome Raise(VcpuState& s, const Exception& e) {
  if (e.vector == Vector::kPf) s.cr2 = e.cr2;  // what the CPU does on delivery (§4.7)
  Outcome o;
  o.kind = Outcome::Kind::kException;
  o.exception = e;
  return o;
}
Outcome Raise(VcpuState& s, Vector v) { return Raise(s, Exception::Fault(v)); }
Outcome RaiseGp0(VcpuState& s) { return Raise(s, Exception::WithCode(Vector::kGp, 0)); }

// The instruction is done: RIP past it, RF cleared (SDM Vol. 3A §17.3.1.1), and a
// single-step #DB if TF was set when it began (§17.3.1.4).
Outcome Complete(const Decoded& d, VcpuState& s, bool single_step) {
  s.rip += d.length;
  s.rflags &= ~rflags::kRf;
  Outcome o;
  if (single_step) {
    o.kind = Outcome::Kind::kException;
    o.exception = Exception::Fault(Vector::kDb);
    o.exception.dr6 = kDr6Bs;
  }
  return o;
}

// A non-canonical SS-relative address is #SS(0), any other #GP(0) (SDM Vol. 3A §6.15,
// "Interrupt 12" and "Interrupt 13"; Vol. 2 "64-Bit Mode Exceptions" of each instruction).
Vector NonCanonicalVector(const Decoded& d) {
  return d.mem.segment == SegReg::kSs ? Vector::kSs : Vector::kGp;
}

// #AC: CPL 3 with CR0.AM and RFLAGS.AC and a misaligned operand (SDM Vol. 3A §6.15,
// "Interrupt 17"). It ranks below #PF (§6.9 Table 6-2), so it is checked after the walk.
bool AlignmentFault(const VcpuState& s, uint64_t linear, uint64_t size) {
  return s.cpl == 3 && (s.cr0 & cr0::kAm) && (s.rflags & rflags::kAc) && (linear & (size - 1)) != 0;
}

Result<Mapping> MapOperand(const Decoded& d, const VcpuState& s, const GuestRam& mem, uint64_t size,
                           AccessType access) {
  const uint64_t linear = LinearAddress(d, s);
  LinearMemory lm(s, mem);
  ASSIGN_OR_RETURN(Mapping m, lm.Map(linear, size, access, NonCanonicalVector(d)));
  if (!m.fault && AlignmentFault(s, linear, size)) {
    m.pieces.clear();
    m.fault = Exception::WithCode(Vector::kAc, 0);
  }
  return m;
}

// POPCNT (SDM Vol. 2B "POPCNT"): ZF set iff the source is 0; OF SF AF CF PF cleared.
Result<Outcome> Popcnt(const Decoded& d, VcpuState& s, const GuestRam& mem, bool tf) {
  const unsigned size = d.operand_size / 8;
  const uint64_t mask = size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
  uint64_t src = 0;
  if (d.has_memory) {
    ASSIGN_OR_RETURN(Mapping m, MapOperand(d, s, mem, size, AccessType::kRead));
    if (m.fault) return Raise(s, *m.fault);
    uint8_t buf[8] = {};
    ReadMapped(m, std::span<uint8_t>(buf, size));
    std::memcpy(&src, buf, sizeof(src));
  } else {
    src = s.gpr[d.rm] & mask;
  }
  const uint64_t count = static_cast<uint64_t>(std::popcount(src));
  uint64_t& dst = s.gpr[d.reg];
  // A 32-bit destination is zero-extended, a 16-bit one merged (SDM Vol. 1 §3.4.1.1).
  dst = size == 2 ? (dst & ~0xFFFFull) | count : count;
  s.rflags &= ~rflags::kArith;
  if (src == 0) s.rflags |= rflags::kZf;
  return Complete(d, s, tf);
}

// CMPXCHG16B (SDM Vol. 2A "CMPXCHG8B/CMPXCHG16B"): #GP(0) unless 16-byte aligned; the
// destination always gets a write cycle, so it needs write permission either way.
Result<Outcome> Cmpxchg16b(const Decoded& d, VcpuState& s, const GuestRam& mem, bool tf) {
  const uint64_t linear = LinearAddress(d, s);
  if (!IsCanonical(s, linear)) return Raise(s, Exception::WithCode(NonCanonicalVector(d), 0));
  if (linear & 15) return RaiseGp0(s);
  LinearMemory lm(s, mem);
  ASSIGN_OR_RETURN(Mapping m, lm.Map(linear, 16, AccessType::kWrite, NonCanonicalVector(d)));
  if (m.fault) return Raise(s, *m.fault);
  if (m.pieces.size() != 1) return Error(ErrorKind::kInternal, "aligned m128 split in two");
  ASSIGN_OR_RETURN(Cmpxchg16Result r, CompareExchange16(m.pieces[0], s.gpr[kRax], s.gpr[kRdx],
                                                        s.gpr[kRbx], s.gpr[kRcx]));
  if (r.swapped) {
    s.rflags |= rflags::kZf;
  } else {
    s.rflags &= ~rflags::kZf;
    s.gpr[kRax] = r.old_lo;
    s.gpr[kRdx] = r.old_hi;
  }
  return Complete(d, s, tf);
}

// LDMXCSR / STMXCSR (SDM Vol. 2A "LDMXCSR", Vol. 2B "STMXCSR"): #UD with CR0.EM or without
// CR4.OSFXSR, then #NM with CR0.TS, then the memory access; LDMXCSR #GP(0) on reserved bits.
Result<Outcome> Mxcsr(const Decoded& d, VcpuState& s, const GuestRam& mem, bool tf) {
  if ((s.cr0 & cr0::kEm) || !(s.cr4 & cr4::kOsfxsr)) return Raise(s, Vector::kUd);
  if (s.cr0 & cr0::kTs) return Raise(s, Vector::kNm);
  uint8_t buf[4];
  if (d.op == Op::kStmxcsr) {
    ASSIGN_OR_RETURN(Mapping m, MapOperand(d, s, mem, 4, AccessType::kWrite));
    if (m.fault) return Raise(s, *m.fault);
    std::memcpy(buf, &s.mxcsr, 4);
    WriteMapped(m, buf);
    return Complete(d, s, tf);
  }
  ASSIGN_OR_RETURN(Mapping m, MapOperand(d, s, mem, 4, AccessType::kRead));
  if (m.fault) return Raise(s, *m.fault);
  ReadMapped(m, buf);
  uint32_t value;
  std::memcpy(&value, buf, 4);
  const uint32_t allowed = s.mxcsr_mask != 0 ? s.mxcsr_mask : kDefaultMxcsrMask;
  if (value & ~allowed) return RaiseGp0(s);
  s.mxcsr = value;
  Outcome o = Complete(d, s, tf);
  o.mxcsr_written = true;
  return o;
}

// XSAVE / XRSTOR / XSAVEOPT (SDM Vol. 2C): the checks that need no XSAVE state.
Outcome XsaveFamily(const Decoded& d, VcpuState& s) {
  if (!(s.cr4 & cr4::kOsxsave)) return Raise(s, Vector::kUd);
  if (s.cr0 & cr0::kTs) return Raise(s, Vector::kNm);
  const uint64_t linear = LinearAddress(d, s);
  if (!IsCanonical(s, linear)) return Raise(s, Exception::WithCode(NonCanonicalVector(d), 0));
  if (linear & 63) return RaiseGp0(s);
  Outcome o;
  o.kind = Outcome::Kind::kNeedsFpuState;
  o.fpu_linear = linear;
  return o;
}

}  // namespace

Result<Outcome> Emulate(const Decoded& d, VcpuState& s, const GuestRam& mem) {
  const bool tf = (s.rflags & rflags::kTf) != 0;
  switch (d.op) {
    case Op::kInvalidOpcode:
      return Raise(s, Vector::kUd);
    case Op::kTooLong:
      return RaiseGp0(s);  // SDM Vol. 2A §2.3.11
    case Op::kInt3: {
      // A trap: the #BP frame holds the address after the int3 (SDM Vol. 2A "INT n/INTO/
      // INT3/INT1"; Vol. 3A §6.5). Delivery clears TF, so no single-step #DB follows.
      s.rip += d.length;
      s.rflags &= ~rflags::kRf;
      return Raise(s, Vector::kBp);
    }
    case Op::kClac:
    case Op::kStac:
      // SMAP instructions are privileged: #UD at CPL > 0 (SDM Vol. 2A "CLAC", Vol. 2B "STAC").
      if (s.cpl > 0) return Raise(s, Vector::kUd);
      if (d.op == Op::kClac) {
        s.rflags &= ~rflags::kAc;
      } else {
        s.rflags |= rflags::kAc;
      }
      return Complete(d, s, tf);
    case Op::kFwait:
      // SDM Vol. 2B "WAIT/FWAIT": #NM when CR0.MP and CR0.TS are both set. A pending
      // unmasked x87 exception (FSW.ES) is reported here as #MF with CR0.NE (Vol. 1 §8.7);
      // with NE=0 the CPU would signal FERR# instead, which we do not model.
      if ((s.cr0 & (cr0::kMp | cr0::kTs)) == (cr0::kMp | cr0::kTs)) return Raise(s, Vector::kNm);
      if ((s.fpu_status & kFswEs) && (s.cr0 & cr0::kNe)) return Raise(s, Vector::kMf);
      return Complete(d, s, tf);
    case Op::kPopcnt:
      return Popcnt(d, s, mem, tf);
    case Op::kCmpxchg16b:
      return Cmpxchg16b(d, s, mem, tf);
    case Op::kLdmxcsr:
    case Op::kStmxcsr:
      return Mxcsr(d, s, mem, tf);
    case Op::kXsave:
    case Op::kXrstor:
    case Op::kXsaveopt:
      return XsaveFamily(d, s);
  }
  return Error(ErrorKind::kInternal, "unknown decoded op");
}

}  // namespace vmm::compat::pvm
