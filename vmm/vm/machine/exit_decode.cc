#include "vmm/vm/machine/exit_decode.h"

#include <algorithm>
#include <string>

namespace vmm {
namespace {

Error Malformed(const std::string& what) { return Error(ErrorKind::kKvm, "malformed " + what); }

Result<VcpuExit> DecodeIo(const kvm_run& run, std::span<uint8_t> page) {
  const auto& io = run.io;
  if (io.size != 1 && io.size != 2 && io.size != 4) {
    return Malformed("KVM_EXIT_IO from KVM: access size " + std::to_string(io.size));
  }
  if (io.direction != KVM_EXIT_IO_IN && io.direction != KVM_EXIT_IO_OUT) {
    return Malformed("KVM_EXIT_IO from KVM: direction " + std::to_string(io.direction));
  }
  // size <= 4 and count < 2^32, so the product fits in 64 bits; KVM puts the data inside the
  // mapping, after kvm_run itself.
  const uint64_t bytes = uint64_t{io.size} * io.count;
  if (io.data_offset < sizeof(kvm_run) || io.data_offset > page.size() ||
      bytes > page.size() - io.data_offset) {
    return Malformed("KVM_EXIT_IO from KVM: " + std::to_string(bytes) + " bytes at offset " +
                     std::to_string(io.data_offset) + " are outside the " +
                     std::to_string(page.size()) + "-byte kvm_run mapping");
  }
  exits::Io out;
  out.port = io.port;
  out.direction =
      io.direction == KVM_EXIT_IO_OUT ? exits::IoDirection::kOut : exits::IoDirection::kIn;
  out.size = io.size;
  out.count = io.count;
  out.data = page.subspan(static_cast<size_t>(io.data_offset), static_cast<size_t>(bytes));
  return VcpuExit(out);
}

Result<VcpuExit> DecodeMmio(kvm_run& run) {
  auto& m = run.mmio;
  if (m.len == 0 || m.len > sizeof(m.data)) {
    return Malformed("KVM_EXIT_MMIO: length " + std::to_string(m.len));
  }
  return VcpuExit(exits::Mmio{m.phys_addr, std::span<uint8_t>(m.data, m.len), m.is_write != 0});
}

exits::InternalError DecodeInternalError(const kvm_run& run) {
  exits::InternalError e;
  e.suberror = run.internal.suberror;
  if (run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
      (run.emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
    e.has_insn_bytes = true;
    const size_t n =
        std::min<size_t>(run.emulation_failure.insn_size, sizeof(run.emulation_failure.insn_bytes));
    e.insn_bytes.assign(run.emulation_failure.insn_bytes, run.emulation_failure.insn_bytes + n);
  } else {
    const size_t n = std::min<size_t>(run.internal.ndata, std::size(run.internal.data));
    e.data.assign(run.internal.data, run.internal.data + n);
  }
  return e;
}

}  // namespace

Result<VcpuExit> DecodeExit(std::span<uint8_t> run_page) {
  if (run_page.size() < sizeof(kvm_run)) {
    return Malformed("kvm_run mapping: " + std::to_string(run_page.size()) +
                     " bytes, smaller than kvm_run");
  }
  if (reinterpret_cast<uintptr_t>(run_page.data()) % alignof(kvm_run) != 0) {
    return Error(ErrorKind::kInternal, "kvm_run mapping is not aligned");
  }
  kvm_run& run = *reinterpret_cast<kvm_run*>(run_page.data());
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
      return DecodeIo(run, run_page);
    case KVM_EXIT_MMIO:
      return DecodeMmio(run);
    case KVM_EXIT_SHUTDOWN:
      return VcpuExit(exits::Shutdown{});
    case KVM_EXIT_HLT:
      return VcpuExit(exits::Hlt{});
    case KVM_EXIT_INTR:
      return VcpuExit(exits::Intr{});
    case KVM_EXIT_FAIL_ENTRY:
      return VcpuExit(
          exits::FailEntry{run.fail_entry.hardware_entry_failure_reason, run.fail_entry.cpu});
    case KVM_EXIT_INTERNAL_ERROR:
      return VcpuExit(DecodeInternalError(run));
    case KVM_EXIT_SYSTEM_EVENT:
      return VcpuExit(exits::SystemEvent{run.system_event.type});
    case KVM_EXIT_X86_RDMSR:
      return VcpuExit(exits::X86Rdmsr{run.msr.index, run.msr.reason});
    case KVM_EXIT_X86_WRMSR:
      return VcpuExit(exits::X86Wrmsr{run.msr.index, run.msr.reason, run.msr.data});
    case KVM_EXIT_DEBUG:
      return VcpuExit(exits::Debug{run.debug.arch.exception, run.debug.arch.pc, run.debug.arch.dr6,
                                   run.debug.arch.dr7});
    default:
      return VcpuExit(exits::Unknown{run.exit_reason});
  }
}

}  // namespace vmm
