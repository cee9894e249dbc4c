// The slice of vCPU state that the kvm_pvm instruction completer reads and writes, and the
// guest-visible exceptions it can raise. Plain data, no KVM: see kvm_state.h for the ioctl
// structs.
//
//   VcpuState s = FromKvm(regs, sregs);      // kvm_state.h
//   s.gpr[kRax] = 1;  if (s.In64BitMode()) ...
//
// Bit positions follow Intel SDM Vol. 3A §2.3 (EFLAGS §2.3 / Vol. 1 §3.4.3, CR0/CR4 §2.5,
// IA32_EFER §2.2.1); the vectors follow SDM Vol. 3A §6.3.1 Table 6-1.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

namespace vmm::compat::pvm {

// GPR numbers in ModRM/REX order (SDM Vol. 2A §2.1.5 Table 2-2, §2.2.1.2).
enum Gpr : uint8_t {
  kRax,
  kRcx,
  kRdx,
  kRbx,
  kRsp,
  kRbp,
  kRsi,
  kRdi,
  kR8,
  kR9,
  kR10,
  kR11,
  kR12,
  kR13,
  kR14,
  kR15,
};

namespace rflags {
inline constexpr uint64_t kCf = 1ull << 0;
inline constexpr uint64_t kPf = 1ull << 2;
inline constexpr uint64_t kAf = 1ull << 4;
inline constexpr uint64_t kZf = 1ull << 6;
inline constexpr uint64_t kSf = 1ull << 7;
inline constexpr uint64_t kTf = 1ull << 8;
inline constexpr uint64_t kOf = 1ull << 11;
inline constexpr uint64_t kRf = 1ull << 16;
inline constexpr uint64_t kAc = 1ull << 18;
inline constexpr uint64_t kArith = kCf | kPf | kAf | kZf | kSf | kOf;
}  // namespace rflags

namespace cr0 {
inline constexpr uint64_t kMp = 1ull << 1;
inline constexpr uint64_t kEm = 1ull << 2;
inline constexpr uint64_t kTs = 1ull << 3;
inline constexpr uint64_t kNe = 1ull << 5;
inline constexpr uint64_t kWp = 1ull << 16;
inline constexpr uint64_t kAm = 1ull << 18;
inline constexpr uint64_t kPg = 1ull << 31;
}  // namespace cr0

namespace cr4 {
inline constexpr uint64_t kPse = 1ull << 4;
inline constexpr uint64_t kPae = 1ull << 5;
inline constexpr uint64_t kOsfxsr = 1ull << 9;
inline constexpr uint64_t kLa57 = 1ull << 12;
inline constexpr uint64_t kOsxsave = 1ull << 18;
inline constexpr uint64_t kSmep = 1ull << 20;
inline constexpr uint64_t kSmap = 1ull << 21;
inline constexpr uint64_t kPke = 1ull << 22;
}  // namespace cr4

namespace efer {
inline constexpr uint64_t kLme = 1ull << 8;
inline constexpr uint64_t kLma = 1ull << 10;
inline constexpr uint64_t kNxe = 1ull << 11;
}  // namespace efer

// Architectural exception vectors (SDM Vol. 3A §6.3.1 Table 6-1).
enum class Vector : uint8_t {
  kDb = 1,   // debug (single-step trap after a completed instruction)
  kBp = 3,   // int3
  kUd = 6,   // invalid opcode
  kNm = 7,   // device not available (CR0.TS / CR0.EM)
  kSs = 12,  // stack-segment fault (non-canonical SS-relative address)
  kGp = 13,  // general protection
  kPf = 14,  // page fault
  kMf = 16,  // x87 floating-point error (pending unmasked exception at fwait)
  kAc = 17,  // alignment check
};

// Page-fault error code bits (SDM Vol. 3A §4.7, Figure 4-12).
namespace pf {
inline constexpr uint32_t kPresent = 1u << 0;  // 0: not present; 1: protection violation
inline constexpr uint32_t kWrite = 1u << 1;
inline constexpr uint32_t kUser = 1u << 2;   // the access was made at CPL 3
inline constexpr uint32_t kRsvd = 1u << 3;   // a reserved bit was set in an entry
inline constexpr uint32_t kFetch = 1u << 4;  // instruction fetch (only with NXE or SMEP)
inline constexpr uint32_t kPk = 1u << 5;     // protection-key violation
}  // namespace pf

// An exception the guest must see. Faults leave RIP at the instruction; traps (#BP, #DB)
// come with RIP already advanced past it (SDM Vol. 3A §6.5).
struct Exception {
  Vector vector = Vector::kUd;
  bool has_error_code = false;
  uint32_t error_code = 0;
  uint64_t cr2 = 0;  // #PF: the faulting linear address (SDM Vol. 3A §4.7)
  uint64_t dr6 = 0;  // #DB: the DR6 bits to set, e.g. BS (SDM Vol. 3A §17.2.3)

  static Exception Fault(Vector v) { return {v, false, 0, 0, 0}; }
  static Exception WithCode(Vector v, uint32_t code) { return {v, true, code, 0, 0}; }
  static Exception PageFault(uint64_t linear, uint32_t code) {
    return {Vector::kPf, true, code, linear, 0};
  }
  bool operator==(const Exception&) const = default;
};

// A guest-visible fault, or none. Returned inside Result<> so that a VMM-side failure (a
// GPA outside RAM) stays distinct from something the guest must be told about.
using Fault = std::optional<Exception>;

struct VcpuState {
  std::array<uint64_t, 16> gpr{};  // indexed by Gpr
  uint64_t rip = 0;
  uint64_t rflags = 0x2;
  uint64_t cr0 = 0;
  uint64_t cr2 = 0;
  uint64_t cr3 = 0;
  uint64_t cr4 = 0;
  uint64_t efer = 0;
  uint8_t cpl = 0;
  bool cs_l = false;  // CS.L: 64-bit code segment (with EFER.LMA)
  bool cs_d = false;  // CS.D: default operand/address size 32 outside 64-bit mode
  // Segment bases. Only FS and GS take part in 64-bit addressing (SDM Vol. 1 §3.4.2.1); the
  // others are carried so the struct is complete for 32-bit code.
  uint64_t cs_base = 0, ds_base = 0, es_base = 0, ss_base = 0, fs_base = 0, gs_base = 0;

  // Not in kvm_regs/kvm_sregs: the plumbing fills these from KVM_GET_FPU / XSAVE / CPUID.
  uint32_t mxcsr = 0x1F80;       // SDM Vol. 1 §10.2.3: power-up value
  uint32_t mxcsr_mask = 0xFFFF;  // from FXSAVE; bits clear here are reserved (Vol. 1 §11.6.6)
  uint16_t fpu_status = 0;       // x87 FSW; bit 7 (ES) = unmasked exception pending
  uint32_t pkru = 0;             // protection-key rights for user pages (Vol. 3A §4.6.2)
  uint8_t phys_addr_bits = 52;   // MAXPHYADDR, CPUID 0x80000008 EAX[7:0]

  bool LongMode() const { return (efer & efer::kLma) != 0; }
  bool In64BitMode() const { return LongMode() && cs_l; }
  bool PagingEnabled() const { return (cr0 & cr0::kPg) != 0; }
};

}  // namespace vmm::compat::pvm
