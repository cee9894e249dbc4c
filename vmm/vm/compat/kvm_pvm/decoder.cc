#include "vmm/vm/compat/kvm_pvm/decoder.h"

#include <algorithm>
#include <cstdio>

#include "base/enum_names.h"

namespace vmm::compat::pvm {
namespace {

struct Prefixes {
  bool lock = false, rep = false, repne = false, opsize = false, addrsize = false;
  SegReg segment = SegReg::kDs;
  bool segment_override = false;  // FS or GS
  uint8_t rex = 0;
  bool W() const { return rex & 8; }
  bool R() const { return rex & 4; }
  bool X() const { return rex & 2; }
  bool B() const { return rex & 1; }
  bool AnySimdPrefix() const { return opsize || rep || repne; }
};

// Walks the instruction bytes, telling a short buffer (truncated) from an instruction that
// cannot fit in 15 bytes (too long: SDM Vol. 2A §2.3.11).
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> bytes)
      : bytes_(bytes.first(std::min(bytes.size(), kMaxInstructionLength))) {}
  enum class Status { kOk, kTruncated, kTooLong };
  Status Need(size_t n) const {
    if (pos_ + n > kMaxInstructionLength) return Status::kTooLong;
    if (pos_ + n > bytes_.size()) return Status::kTruncated;
    return Status::kOk;
  }
  uint8_t Peek() const { return bytes_[pos_]; }
  uint8_t Next() { return bytes_[pos_++]; }
  int64_t NextDisp(size_t n) {
    if (n == 1) return static_cast<int8_t>(Next());
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v |= uint32_t{Next()} << (8 * i);
    return static_cast<int32_t>(v);
  }
  size_t pos() const { return pos_; }
  std::span<const uint8_t> all() const { return bytes_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

Undecodable Fail(Undecodable::Reason reason, const Cursor& c) {
  Undecodable u;
  u.reason = reason;
  u.size = static_cast<uint8_t>(c.all().size());
  std::copy(c.all().begin(), c.all().end(), u.bytes.begin());
  return u;
}

DecodeResult Stop(Cursor::Status st, const Cursor& c) {
  if (st == Cursor::Status::kTooLong) {
    Decoded d;
    d.op = Op::kTooLong;
    d.length = static_cast<uint8_t>(c.all().size());  // not the real length: there is none
    std::copy(c.all().begin(), c.all().end(), d.bytes.begin());
    d.why = "instruction longer than 15 bytes";
    return d;
  }
  return Fail(Undecodable::Reason::kTruncated, c);
}

// ModRM, SIB and displacement in 64-bit mode (SDM Vol. 2A §2.1.5 Tables 2-2/2-3, §2.2.1.2
// for REX, §2.2.1.6 for RIP-relative). Returns kOk or why it could not finish.
Cursor::Status DecodeModRm(Cursor& c, const Prefixes& p, Decoded& d) {
  if (auto st = c.Need(1); st != Cursor::Status::kOk) return st;
  const uint8_t modrm = c.Next();
  const uint8_t mod = modrm >> 6, rm = modrm & 7;
  d.reg = static_cast<uint8_t>(((modrm >> 3) & 7) | (p.R() ? 8 : 0));
  if (mod == 3) {
    d.rm = static_cast<uint8_t>(rm | (p.B() ? 8 : 0));
    return Cursor::Status::kOk;
  }
  d.has_memory = true;
  MemOperand& m = d.mem;
  m.address_size = p.addrsize ? 32 : 64;
  size_t disp_size = mod == 1 ? 1 : mod == 2 ? 4 : 0;
  if (rm == 4) {
    if (auto st = c.Need(1); st != Cursor::Status::kOk) return st;
    const uint8_t sib = c.Next();
    const uint8_t idx = static_cast<uint8_t>(((sib >> 3) & 7) | (p.X() ? 8 : 0));
    if (idx != kRsp) m.index = static_cast<int8_t>(idx);  // index 100b without REX.X: none
    m.scale = static_cast<uint8_t>(1u << (sib >> 6));
    if ((sib & 7) == 5 && mod == 0) {
      disp_size = 4;  // no base: disp32, whatever REX.B says
    } else {
      m.base = static_cast<int8_t>((sib & 7) | (p.B() ? 8 : 0));
    }
  } else if (rm == 5 && mod == 0) {
    m.rip_relative = true;  // RIP+disp32, also with REX.B (r13 needs mod=01)
    disp_size = 4;
  } else {
    m.base = static_cast<int8_t>(rm | (p.B() ? 8 : 0));
  }
  if (disp_size > 0) {
    if (auto st = c.Need(disp_size); st != Cursor::Status::kOk) return st;
    m.disp = c.NextDisp(disp_size);
  }
  // Default segment SS for RSP/RBP bases (SDM Vol. 1 §3.7.5 Table 3-5); r12/r13 use DS.
  if (p.segment_override) {
    m.segment = p.segment;
  } else if (m.base == kRsp || m.base == kRbp) {
    m.segment = SegReg::kSs;
  }
  return Cursor::Status::kOk;
}

Decoded Invalid(Decoded d, const char* why) {
  d.op = Op::kInvalidOpcode;
  d.why = why;
  return d;
}

constexpr NamedValue<Op> kOpNames[] = {
    {Op::kInt3, "int3"},          {Op::kFwait, "fwait"},
    {Op::kClac, "clac"},          {Op::kStac, "stac"},
    {Op::kPopcnt, "popcnt"},      {Op::kCmpxchg16b, "cmpxchg16b"},
    {Op::kLdmxcsr, "ldmxcsr"},    {Op::kStmxcsr, "stmxcsr"},
    {Op::kXsave, "xsave"},        {Op::kXrstor, "xrstor"},
    {Op::kXsaveopt, "xsaveopt"},  {Op::kInvalidOpcode, "(invalid opcode)"},
    {Op::kTooLong, "(too long)"},
};

}  // namespace

const char* OpName(Op op) { return NameOf(kOpNames, op, "?"); }

bool NeedsFpuState(Op op) { return op == Op::kXsave || op == Op::kXrstor || op == Op::kXsaveopt; }

std::string Undecodable::Message() const {
  std::string out;
  switch (reason) {
    case Reason::kUnsupported:
      out = "unsupported instruction";
      break;
    case Reason::kTruncated:
      out = "truncated instruction";
      break;
    case Reason::kNot64BitMode:
      out = "instruction outside 64-bit mode (not supported)";
      break;
  }
  out += " [";
  for (size_t i = 0; i < size && i < bytes.size(); ++i) {
    char hex[4];
    std::snprintf(hex, sizeof(hex), i == 0 ? "%02x" : " %02x", bytes[i]);
    out += hex;
  }
  return out + "]";
}

DecodeResult Decode(std::span<const uint8_t> bytes, const VcpuState& state) {
  Cursor c(bytes);
  if (!state.In64BitMode()) return Fail(Undecodable::Reason::kNot64BitMode, c);
  Prefixes p;
  for (;;) {
    if (auto st = c.Need(1); st != Cursor::Status::kOk) return Stop(st, c);
    const uint8_t b = c.Peek();
    if (b >= 0x40 && b <= 0x4F) {
      p.rex = b;  // only kept if the opcode follows directly
      c.Next();
      continue;
    }
    bool prefix = true;
    switch (b) {
      case 0xF0:
        p.lock = true;
        break;
      case 0xF2:
        p.repne = true;
        break;
      case 0xF3:
        p.rep = true;
        break;
      case 0x66:
        p.opsize = true;
        break;
      case 0x67:
        p.addrsize = true;
        break;
      case 0x26:
      case 0x2E:
      case 0x36:
      case 0x3E:
        break;  // null prefixes in 64-bit mode
      case 0x64:
        p.segment = SegReg::kFs;
        p.segment_override = true;
        break;
      case 0x65:
        p.segment = SegReg::kGs;
        p.segment_override = true;
        break;
      default:
        prefix = false;
        break;
    }
    if (!prefix) break;
    p.rex = 0;  // a REX prefix followed by a legacy prefix is ignored (§2.2.1)
    c.Next();
  }

  Decoded d;
  d.lock = p.lock;
  const uint8_t opcode = c.Next();
  Cursor::Status st = Cursor::Status::kOk;
  if (opcode == 0xCC || opcode == 0x9B) {
    d.op = opcode == 0xCC ? Op::kInt3 : Op::kFwait;
  } else if (opcode != 0x0F) {
    return Fail(Undecodable::Reason::kUnsupported, c);
  } else {
    if (st = c.Need(1); st != Cursor::Status::kOk) return Stop(st, c);
    const uint8_t op2 = c.Next();
    if (op2 == 0x01) {
      if (st = c.Need(1); st != Cursor::Status::kOk) return Stop(st, c);
      const uint8_t b = c.Next();
      // NP: F3/F2 0F 01 CA are ERETU/ERETS (FRED), so no 66/F2/F3 here.
      if ((b != 0xCA && b != 0xCB) || p.AnySimdPrefix()) {
        return Fail(Undecodable::Reason::kUnsupported, c);
      }
      d.op = b == 0xCA ? Op::kClac : Op::kStac;
    } else if (op2 == 0xB8) {
      // Without F3 this is JMPE; F2 with F3 has no defined meaning.
      if (!p.rep || p.repne) return Fail(Undecodable::Reason::kUnsupported, c);
      if (st = DecodeModRm(c, p, d); st != Cursor::Status::kOk) return Stop(st, c);
      d.op = Op::kPopcnt;
      d.operand_size = p.W() ? 64 : p.opsize ? 16 : 32;  // REX.W beats 66 (§2.2.1.2)
    } else if (op2 == 0xC7) {
      if (st = DecodeModRm(c, p, d); st != Cursor::Status::kOk) return Stop(st, c);
      // /1 without REX.W is cmpxchg8b, which KVM emulates itself. F2/F3 are accepted only
      // as the HLE hints that go with LOCK (SDM Vol. 2B "XACQUIRE/XRELEASE").
      if ((d.reg & 7) != 1 || !p.W() || ((p.rep || p.repne) && !p.lock)) {
        return Fail(Undecodable::Reason::kUnsupported, c);
      }
      d.op = Op::kCmpxchg16b;
      d.operand_size = 64;
    } else if (op2 == 0xAE) {
      if (st = DecodeModRm(c, p, d); st != Cursor::Status::kOk) return Stop(st, c);
      const uint8_t ext = d.reg & 7;
      // mod=11 forms are the fences and RD/WR{FS,GS}BASE; 66/F2/F3 select CLWB, PTWRITE...
      if (!d.has_memory || ext < 2 || ext > 6 || p.AnySimdPrefix()) {
        return Fail(Undecodable::Reason::kUnsupported, c);
      }
      static constexpr Op kByExt[] = {Op::kLdmxcsr, Op::kStmxcsr, Op::kXsave, Op::kXrstor,
                                      Op::kXsaveopt};
      d.op = kByExt[ext - 2];
      d.operand_size = p.W() ? 64 : 32;
    } else {
      return Fail(Undecodable::Reason::kUnsupported, c);
    }
  }
  d.length = static_cast<uint8_t>(c.pos());
  std::copy(c.all().begin(), c.all().begin() + d.length, d.bytes.begin());
  // SDM Vol. 2A "CMPXCHG8B/CMPXCHG16B": #UD if the destination is not a memory location.
  if (d.op == Op::kCmpxchg16b && !d.has_memory) {
    return Invalid(d, "cmpxchg16b needs a memory operand");
  }
  // LOCK is only defined for read-modify-write memory forms (SDM Vol. 2A §2.1.1, "LOCK").
  if (p.lock && d.op != Op::kCmpxchg16b) return Invalid(d, "LOCK prefix not allowed here");
  return d;
}

uint64_t EffectiveAddress(const Decoded& d, const VcpuState& s) {
  const MemOperand& m = d.mem;
  uint64_t ea = static_cast<uint64_t>(m.disp);
  if (m.rip_relative) {
    ea += s.rip + d.length;
  } else {
    if (m.base >= 0) ea += s.gpr[static_cast<size_t>(m.base)];
    if (m.index >= 0) ea += s.gpr[static_cast<size_t>(m.index)] * m.scale;
  }
  if (m.address_size == 32) ea &= 0xFFFFFFFF;
  return ea;
}

uint64_t LinearAddress(const Decoded& d, const VcpuState& s) {
  uint64_t base = 0;
  if (d.mem.segment == SegReg::kFs) base = s.fs_base;
  if (d.mem.segment == SegReg::kGs) base = s.gs_base;
  return base + EffectiveAddress(d, s);
}

}  // namespace vmm::compat::pvm
