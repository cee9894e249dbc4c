// Decoder for the few instructions that kvm_pvm's in-kernel emulator gives up on and that
// a stock Linux kernel runs in ring 0 (ARCHITECTURE.md §5). Everything else is Undecodable, with
// the bytes kept for the error message. 64-bit mode only.
//
//   DecodeResult r = Decode(exit_bytes, state);
//   if (auto* bad = std::get_if<Undecodable>(&r)) return bad->ToError();
//   const Decoded& insn = std::get<Decoded>(r);     // then Emulate(insn, state, ram)
//
// Recognised (SDM Vol. 2 instruction pages; AMD APM Vol. 3):
//   CC                 int3
//   9B                 fwait
//   NP 0F 01 CA / CB   clac / stac
//   F3 0F B8 /r        popcnt r16/32/64, r/m     (66 and REX.W pick the size)
//   REX.W 0F C7 /1 m   cmpxchg16b m128           (LOCK allowed; F2/F3 only as LOCK's
//                                                  XACQUIRE/XRELEASE hints)
//   NP 0F AE /2 /3 m   ldmxcsr / stmxcsr m32
//   NP 0F AE /4 /5 /6  xsave / xrstor / xsaveopt (REX.W: the 64-bit forms); these need
//                      the XSAVE state, which only the plumbing has: see NeedsFpuState()
// Prefixes (SDM Vol. 2A §2.1.1, §2.2.1): LOCK, F2, F3, 66, 67, segment overrides (in
// 64-bit mode CS/DS/ES/SS are ignored, FS/GS add their base; the last FS/GS wins), REX
// (only directly before the opcode; a REX followed by another prefix is ignored).
//
// Encodings the CPU itself rejects decode to Op::kInvalidOpcode (#UD: LOCK on anything but
// cmpxchg16b, cmpxchg16b with a register operand), and instructions longer than 15 bytes
// to Op::kTooLong (#GP(0), SDM Vol. 2A §2.3.11).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include "base/result.h"
#include "vmm/vm/compat/kvm_pvm/vcpu_state.h"

namespace vmm::compat::pvm {

inline constexpr size_t kMaxInstructionLength = 15;

enum class Op : uint8_t {
  kInt3,
  kFwait,
  kClac,
  kStac,
  kPopcnt,
  kCmpxchg16b,
  kLdmxcsr,
  kStmxcsr,
  kXsave,
  kXrstor,
  kXsaveopt,
  kInvalidOpcode,  // a recognised encoding that raises #UD
  kTooLong,        // more than 15 bytes: #GP(0)
};

const char* OpName(Op op);
// xsave/xrstor/xsaveopt: Emulate() checks them and hands them back (Outcome::kNeedsFpuState).
bool NeedsFpuState(Op op);

enum class SegReg : uint8_t { kEs, kCs, kSs, kDs, kFs, kGs };

struct MemOperand {
  SegReg segment = SegReg::kDs;  // after overrides; SS when the base is RSP or RBP
  int8_t base = -1;              // Gpr or -1
  int8_t index = -1;             // Gpr or -1
  uint8_t scale = 1;
  bool rip_relative = false;  // base is the next instruction's RIP (SDM Vol. 2A §2.2.1.6)
  uint8_t address_size = 64;  // 32 with the 67 prefix
  int64_t disp = 0;           // sign-extended
};

struct Decoded {
  Op op = Op::kInvalidOpcode;
  uint8_t length = 0;         // 1..15
  uint8_t operand_size = 32;  // popcnt: 16/32/64; xsave family: 64 with REX.W
  bool lock = false;
  bool has_memory = false;
  MemOperand mem;   // when has_memory
  uint8_t reg = 0;  // ModRM.reg with REX.R: popcnt's destination
  uint8_t rm = 0;   // ModRM.rm with REX.B when the operand is a register
  std::array<uint8_t, kMaxInstructionLength> bytes{};  // the first `length` are the insn
  const char* why = "";                                // for kInvalidOpcode / kTooLong: which rule
};

struct Undecodable {
  enum class Reason : uint8_t {
    kUnsupported,   // not one of the instructions above
    kTruncated,     // the bytes end inside an instruction shorter than 15 bytes
    kNot64BitMode,  // CS.L=0 or EFER.LMA=0
  };
  Reason reason = Reason::kUnsupported;
  std::array<uint8_t, kMaxInstructionLength> bytes{};
  uint8_t size = 0;  // how many of `bytes` we were given (at most 15)

  // "unsupported instruction f0 0f 0b" and the like.
  std::string Message() const;
  Error ToError() const { return Error(ErrorKind::kGuest, Message()); }
};

using DecodeResult = std::variant<Decoded, Undecodable>;

// Decodes the instruction at the start of `bytes`; bytes past the 15th are never looked at.
DecodeResult Decode(std::span<const uint8_t> bytes, const VcpuState& state);

// The memory operand's offset in its segment: base + index*scale + disp, or next RIP +
// disp, truncated to the address size (SDM Vol. 1 §3.7.5, Vol. 2A §2.2.1.6).
uint64_t EffectiveAddress(const Decoded& insn, const VcpuState& state);
// The linear address: the effective address plus the FS or GS base (the only segment
// bases used in 64-bit mode, SDM Vol. 1 §3.4.2.1). Not yet checked for canonical form.
uint64_t LinearAddress(const Decoded& insn, const VcpuState& state);

}  // namespace vmm::compat::pvm
