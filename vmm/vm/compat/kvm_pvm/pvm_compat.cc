#include "vmm/vm/compat/kvm_pvm/pvm_compat.h"

#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <span>
#include <variant>

#include "base/bytes.h"
#include "vmm/contract/layout.h"
#include "vmm/vm/compat/kvm_pvm/decoder.h"
#include "vmm/vm/compat/kvm_pvm/emulate.h"
#include "vmm/vm/compat/kvm_pvm/kvm_state.h"
#include "vmm/vm/compat/kvm_pvm/linear_memory.h"
#include "vmm/vm/compat/kvm_pvm/page_walk.h"
#include "vmm/vm/compat/kvm_pvm/syscall_fixup.h"

namespace vmm::compat::pvm {
namespace {

constexpr uint8_t kUdVector = 6;
static_assert(kSyscallRedirect == x86::kCompatWindowAddr,
              "the redirect is the window's first page");
constexpr uint32_t kDbVector = 1;
// DR7 (SDM Vol. 3B §17.2.4): L0 enables DR0; R/W0 = 00 and LEN0 = 00 make it an
// instruction breakpoint; bit 10 reads as 1. GE (bit 9) as debuggers set it.
constexpr uint64_t kDr7ExecuteDr0 = (1ull << 0) | (1ull << 9) | (1ull << 10);
constexpr uint64_t kDr6B0 = 1ull << 0;  // DR0's condition was met

struct InstructionBytes {
  std::array<uint8_t, kMaxInstructionLength> bytes{};
  uint8_t size = 0;
  Fault fetch_fault;  // set when reading at CS:RIP faulted after `size` bytes
};

Result<VcpuState> LoadState(kvm::KvmVcpu& vcpu, kvm_regs& regs, kvm_sregs& sregs) {
  ASSIGN_OR_RETURN(regs, vcpu.GetRegs());
  ASSIGN_OR_RETURN(sregs, vcpu.GetSregs());
  return FromKvm(regs, sregs);
}

// The instructions that read the x87 status word or MXCSR: only these pay for
// KVM_GET_XSAVE (an ioctl and 4 KiB per exit, on a host where exits are the cost).
bool ReadsFpuFields(Op op) { return op == Op::kFwait || op == Op::kLdmxcsr || op == Op::kStmxcsr; }

// KVM hands over the bytes its emulator fetched (Linux 5.14+), which stop where its decoder
// gave up: on kvm_pvm, `stmxcsr [rsp+8]` arrives as 4 of its 5 bytes. Read the instruction
// through the guest's page tables as well and keep the longer read when it agrees with
// KVM's; KVM's bytes alone when ours cannot be read (CS:RIP outside RAM).
Result<InstructionBytes> ReadInstruction(const kvm_run& run, const VcpuState& s,
                                         const GuestRam& mem) {
  InstructionBytes out;
  const auto& ef = run.emulation_failure;
  const bool from_kvm = run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
                        (ef.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
                        ef.insn_size > 0;
  if (from_kvm) {
    out.size = static_cast<uint8_t>(std::min<size_t>(ef.insn_size, kMaxInstructionLength));
    std::memcpy(out.bytes.data(), ef.insn_bytes, out.size);
  }
  auto fetched = FetchInstruction(s, mem);
  if (!fetched) {
    if (from_kvm) return out;
    return fetched.error();
  }
  if (from_kvm && (fetched->size <= out.size ||
                   std::memcmp(fetched->bytes.data(), out.bytes.data(), out.size) != 0)) {
    return out;
  }
  out.bytes = fetched->bytes;
  out.size = fetched->size;
  out.fetch_fault = fetched->fault;
  return out;
}

std::string HexBytes(std::span<const uint8_t> bytes) {
  std::string s;
  for (uint8_t b : bytes) {
    char hex[4];
    std::snprintf(hex, sizeof(hex), s.empty() ? "%02x" : " %02x", b);
    s += hex;
  }
  return s;
}

std::string AtRip(uint64_t rip) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), " at rip 0x%" PRIx64, rip);
  return buf;
}

}  // namespace

bool Active(KvmCompat setting, kvm::KvmFlavor flavor) {
  switch (setting) {
    case KvmCompat::kOn:
      return true;
    case KvmCompat::kOff:
      return false;
    case KvmCompat::kAuto:
      return flavor == kvm::KvmFlavor::kPvm;
  }
  return false;
}

std::string DescribeFailedInstruction(kvm::KvmVcpu& vcpu, const GuestRam& mem) {
  // Registers only: naming the instruction needs no FPU state, and the vcpu role without
  // the module may not read it (sandbox/roles.cc).
  auto regs = vcpu.GetRegs();
  if (!regs) return "instruction unknown (" + regs.error().ToString() + ")";
  auto sregs = vcpu.GetSregs();
  if (!sregs) return "instruction unknown (" + sregs.error().ToString() + ")";
  const VcpuState s = FromKvm(*regs, *sregs);
  auto insn = ReadInstruction(*vcpu.run_page(), s, mem);
  if (!insn) return "instruction unreadable (" + insn.error().ToString() + ")" + AtRip(s.rip);
  if (insn->size == 0) return "instruction unreadable (no bytes at CS:RIP)" + AtRip(s.rip);
  std::span<const uint8_t> bytes(insn->bytes.data(), insn->size);
  DecodeResult d = Decode(bytes, s);
  if (auto* bad = std::get_if<Undecodable>(&d)) return bad->Message() + AtRip(s.rip);
  const Decoded& ok = std::get<Decoded>(d);
  return std::string(OpName(ok.op)) + " [" + HexBytes(bytes.first(ok.length)) + "]" + AtRip(s.rip);
}

Result<std::unique_ptr<PvmCompat>> PvmCompat::Enable(kvm::KvmVm& vm, uint32_t num_vcpus) {
  // Optional: without it KVM still exits at CPL 0, but queues a #UD first (cleared below).
  (void)vm.EnableCap(KVM_CAP_EXIT_ON_EMULATION_FAILURE, 1);

  auto cap = vm.EnableCap(KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
  if (!cap) return cap.error().Wrap("kvm_pvm compatibility: user-space MSR exits");
  // One range of one MSR whose bitmap bit is 0: accesses to it are denied in the kernel
  // and, with the capability above, exit to us. Everything else stays allowed.
  uint8_t deny_bitmap[1] = {0};  // KVM copies it
  kvm_msr_filter filter{};
  filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
  filter.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
  filter.ranges[0].base = kMsrLstar;
  filter.ranges[0].nmsrs = 1;
  filter.ranges[0].bitmap = deny_bitmap;
  auto f = vm.SetMsrFilter(filter);
  if (!f) return f.error().Wrap("kvm_pvm compatibility: filtering IA32_LSTAR");
  return std::unique_ptr<PvmCompat>(new PvmCompat(num_vcpus));
}

Result<void> PvmCompat::Inject(kvm::KvmVcpu& vcpu, const Exception& e) {
  ASSIGN_OR_RETURN(kvm_vcpu_events events, vcpu.GetVcpuEvents());
  SetInjectedException(e, events);
  RETURN_IF_ERROR(vcpu.SetVcpuEvents(events));
  injected_.fetch_add(1, std::memory_order_relaxed);
  return Ok();
}

Result<void> PvmCompat::CompleteEmulationFailure(kvm::KvmVcpu& vcpu, const GuestRam& mem) {
  const kvm_run& run = *vcpu.run_page();
  if (run.internal.suberror != KVM_INTERNAL_ERROR_EMULATION) {
    return Error(ErrorKind::kKvm, "KVM internal error, suberror " +
                                      std::to_string(run.internal.suberror) +
                                      " (not an emulation failure)");
  }
  kvm_regs regs;
  kvm_sregs sregs;
  ASSIGN_OR_RETURN(VcpuState s, LoadState(vcpu, regs, sregs));
  const uint64_t rip = s.rip;

  // Without KVM_CAP_EXIT_ON_EMULATION_FAILURE, KVM queued a #UD before exiting; the
  // instruction is completed here instead, so that #UD must not reach the guest.
  ASSIGN_OR_RETURN(kvm_vcpu_events events, vcpu.GetVcpuEvents());
  if ((events.exception.injected || events.exception.pending) && events.exception.nr == kUdVector) {
    events.exception.injected = 0;
    events.exception.pending = 0;
    RETURN_IF_ERROR(vcpu.SetVcpuEvents(events));
  }

  const size_t id = vcpu.id();
  if (id < redirected_.size() && redirected_[id] && rip == kSyscallRedirect) {
    RETURN_IF_ERROR(CompleteLanding(vcpu, regs, sregs));
    regs.rip = guest_lstar_[id];  // on into the guest's own entry point
    return vcpu.SetRegs(regs);
  }
  ASSIGN_OR_RETURN(InstructionBytes insn, ReadInstruction(run, s, mem));

  if (insn.size == 0) {
    if (insn.fetch_fault) return Inject(vcpu, *insn.fetch_fault);
    return Error(ErrorKind::kGuest, "kvm_pvm compatibility: no instruction bytes" + AtRip(rip) +
                                        " (CS:RIP is not in guest RAM)");
  }
  DecodeResult decoded = Decode(std::span<const uint8_t>(insn.bytes.data(), insn.size), s);
  if (auto* bad = std::get_if<Undecodable>(&decoded)) {
    if (bad->reason == Undecodable::Reason::kTruncated && insn.fetch_fault) {
      return Inject(vcpu, *insn.fetch_fault);  // the CPU's fetch would have faulted too
    }
    return Error(ErrorKind::kGuest,
                 "kvm_pvm compatibility: cannot complete " + bad->Message() + AtRip(rip));
  }
  const Decoded& d = std::get<Decoded>(decoded);
  if (d.op == Op::kClac) {
    ASSIGN_OR_RETURN(bool landed, CatchFaultedLanding(vcpu, s, regs, sregs, mem));
    if (landed) return Ok();
  }
  std::unique_ptr<kvm_xsave> xsave;  // 4 KiB: not on a vCPU thread's stack
  if (ReadsFpuFields(d.op)) {
    xsave = std::make_unique<kvm_xsave>();
    RETURN_IF_ERROR(vcpu.GetXsave(*xsave));
    LoadFpuFields(*xsave, s);
  }
  auto outcome = Emulate(d, s, mem);
  if (!outcome) {
    return outcome.error().Wrap(std::string("kvm_pvm compatibility: completing ") + OpName(d.op) +
                                AtRip(rip));
  }
  switch (outcome->kind) {
    case Outcome::Kind::kNeedsFpuState:
      return Error(ErrorKind::kGuest,
                   std::string("kvm_pvm compatibility: ") + OpName(d.op) + AtRip(rip) +
                       " needs the XSAVE state, which this module does not complete; boot the "
                       "guest with 'noxsave'");
    case Outcome::Kind::kException: {
      const uint64_t old_cr2 = sregs.cr2;
      StoreToKvm(s, regs, sregs);
      RETURN_IF_ERROR(vcpu.SetRegs(regs));  // traps (#BP, #DB) advanced RIP
      if (sregs.cr2 != old_cr2) RETURN_IF_ERROR(vcpu.SetSregs(sregs));
      return Inject(vcpu, outcome->exception);
    }
    case Outcome::Kind::kCompleted:
      break;
  }
  StoreToKvm(s, regs, sregs);
  RETURN_IF_ERROR(vcpu.SetRegs(regs));
  if (outcome->mxcsr_written && xsave) {
    StoreMxcsr(s, *xsave);
    RETURN_IF_ERROR(vcpu.SetXsave(*xsave));
  }
  completed_.fetch_add(1, std::memory_order_relaxed);
  return Ok();
}

Result<void> PvmCompat::HandleMsrExit(kvm::KvmVcpu& vcpu, const GuestRam& mem) {
  kvm_run& run = *vcpu.run_page();
  if (run.msr.index != kMsrLstar || vcpu.id() >= guest_lstar_.size()) {
    return Error(ErrorKind::kKvm,
                 "unexpected user-space MSR exit for MSR " + std::to_string(run.msr.index));
  }
  uint64_t& lstar = guest_lstar_[vcpu.id()];
  if (run.exit_reason == KVM_EXIT_X86_RDMSR) {
    run.msr.data = lstar;  // the guest's own value, whatever the vCPU really holds
    run.msr.error = 0;
    return Ok();
  }
  // WRMSR: KVM_SET_MSRS is host-initiated and bypasses the filter. KVM checks the value
  // (canonical form) as the CPU would; a refused value becomes the guest's #GP.
  auto set = vcpu.SetMsrs({kvm_msr_entry{kMsrLstar, 0, run.msr.data}});
  if (!set) {
    run.msr.error = 1;
    return Ok();
  }
  lstar = run.msr.data;
  run.msr.error = 0;
  lstar_writes_.fetch_add(1, std::memory_order_relaxed);
  // The SYSCALL trigger (pvm_compat.h): the redirect where the guest maps the emulation
  // window's first page at its identity address for execution, else the breakpoint.
  ASSIGN_OR_RETURN(kvm_regs regs, vcpu.GetRegs());
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  ASSIGN_OR_RETURN(PageWalk walk,
                   Translate(FromKvm(regs, sregs), mem, kSyscallRedirect, AccessType::kFetch));
  const bool redirect = !walk.fault && walk.gpa == kSyscallRedirect;
  redirected_[vcpu.id()] = redirect;
  if (redirect) {
    RETURN_IF_ERROR(vcpu.SetMsrs({kvm_msr_entry{kMsrLstar, 0, kSyscallRedirect}}));
    return vcpu.SetGuestDebug(kvm_guest_debug{});
  }
  if (fault_trigger_[vcpu.id()]) return Ok();  // its landings come as page faults
  return ArmSyscallBreakpoint(vcpu, lstar);
}

Result<void> PvmCompat::ArmSyscallBreakpoint(kvm::KvmVcpu& vcpu, uint64_t lstar) {
  kvm_guest_debug debug{};
  debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
  debug.arch.debugreg[0] = lstar;
  debug.arch.debugreg[7] = kDr7ExecuteDr0;
  auto r = vcpu.SetGuestDebug(debug);
  if (!r) return r.error().Wrap("kvm_pvm compatibility: breakpoint at the guest's LSTAR");
  return Ok();
}

Result<void> PvmCompat::CompleteLanding(kvm::KvmVcpu& vcpu, kvm_regs& regs, kvm_sregs& sregs) {
  ASSIGN_OR_RETURN(std::vector<uint64_t> msrs, vcpu.GetMsrs({kMsrStar, kMsrFmask}));
  auto landing = CompleteSyscallLanding(SyscallMsrs{msrs[0], msrs[1]}, regs, sregs);
  if (!landing) return landing.error().Wrap("kvm_pvm compatibility" + AtRip(regs.rip));
  if (*landing == SyscallLanding::kFixedUp) {
    RETURN_IF_ERROR(vcpu.SetSregs(sregs));
    syscalls_fixed_up_.fetch_add(1, std::memory_order_relaxed);
  } else {
    syscalls_by_cpu_.fetch_add(1, std::memory_order_relaxed);
  }
  return Ok();
}

Result<bool> PvmCompat::CatchFaultedLanding(kvm::KvmVcpu& vcpu, const VcpuState& s, kvm_regs& regs,
                                            kvm_sregs& sregs, const GuestRam& mem) {
  const size_t id = vcpu.id();
  if (id >= guest_lstar_.size() || guest_lstar_[id] == 0 || redirected_[id]) return false;
  // The #PF gate (SDM Vol. 3A §6.14.1: 16 bytes; offset in bytes 0-1, 6-7 and 8-11).
  constexpr uint64_t kGateBytes = 16, kPfVector = 14;
  if (uint64_t{sregs.idt.limit} < kPfVector * kGateBytes + kGateBytes - 1) return false;
  LinearMemory lm(s, mem);
  std::array<uint8_t, kGateBytes> gate{};
  ASSIGN_OR_RETURN(Fault gate_fault, lm.Read(sregs.idt.base + kPfVector * kGateBytes, gate));
  if (gate_fault) return false;
  const std::span<const uint8_t> g(gate);
  const uint64_t handler = uint64_t{LoadLe<uint16_t>(g, 0).value_or(0)} |
                           uint64_t{LoadLe<uint16_t>(g, 6).value_or(0)} << 16 |
                           uint64_t{LoadLe<uint32_t>(g, 8).value_or(0)} << 32;
  if (s.rip < handler || s.rip - handler > kMaxGateToClacBytes) return false;
  std::array<uint8_t, 6 * 8> raw{};
  ASSIGN_OR_RETURN(Fault stack_fault, lm.Read(regs.rsp, raw, AccessType::kRead, Vector::kSs));
  if (stack_fault) return false;
  const std::span<const uint8_t> r(raw);
  auto q = [&r](size_t i) { return LoadLe<uint64_t>(r, 8 * i).value_or(0); };
  const ExceptionFrame frame{q(0), q(1), q(2), q(3), q(4), q(5)};
  if (!IsFaultedSyscallLanding(guest_lstar_[id], s.rip, handler, sregs.cr2, frame)) return false;
  RestoreLanding(frame, regs, sregs);
  RETURN_IF_ERROR(CompleteLanding(vcpu, regs, sregs));
  RETURN_IF_ERROR(vcpu.SetRegs(regs));
  if (!fault_trigger_[id]) {
    RETURN_IF_ERROR(vcpu.SetGuestDebug(kvm_guest_debug{}));
    fault_trigger_[id] = 1;
  }
  faulted_landings_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Result<void> PvmCompat::HandleDebugExit(kvm::KvmVcpu& vcpu) {
  const kvm_debug_exit_arch& d = vcpu.run_page()->debug.arch;
  const uint64_t lstar = vcpu.id() < guest_lstar_.size() ? guest_lstar_[vcpu.id()] : 0;
  ASSIGN_OR_RETURN(kvm_regs regs, vcpu.GetRegs());
  if (d.exception != kDbVector || (d.dr6 & kDr6B0) == 0 || lstar == 0 || d.pc != lstar) {
    // Not the breakpoint: the guest's own single step or icebp, which KVM hands to us
    // while guest debugging is on. The CPU would have delivered it as a #DB trap.
    guest_debug_passed_on_.fetch_add(1, std::memory_order_relaxed);
    if (d.exception != kDbVector) {
      return Error(ErrorKind::kKvm, "KVM_EXIT_DEBUG for exception " + std::to_string(d.exception) +
                                        AtRip(regs.rip) + " (only #DB is expected)");
    }
    return Inject(vcpu, Exception::Fault(Vector::kDb));
  }
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  RETURN_IF_ERROR(CompleteLanding(vcpu, regs, sregs));
  // RF suppresses the instruction breakpoint for the one instruction it would hit again
  // (SDM Vol. 3B §17.3.1.1); the CPU clears it once that instruction completes.
  regs.rflags |= rflags::kRf;
  return vcpu.SetRegs(regs);
}

std::string PvmCompat::Summary() const {
  const uint64_t by_cpu = syscalls_by_cpu_.load(), fixed = syscalls_fixed_up_.load();
  return "kvm_pvm compatibility: " + std::to_string(completed_.load()) +
         " instructions completed, " + std::to_string(injected_.load()) + " exceptions injected, " +
         std::to_string(lstar_writes_.load()) + " LSTAR writes, " + std::to_string(by_cpu + fixed) +
         " SYSCALL landings (" + std::to_string(by_cpu) + " completed by the CPU, " +
         std::to_string(fixed) + " fixed up, " + std::to_string(faulted_landings_.load()) +
         " of them caught at the page-fault entry), " +
         std::to_string(guest_debug_passed_on_.load()) + " guest #DB passed on";
}

}  // namespace vmm::compat::pvm
