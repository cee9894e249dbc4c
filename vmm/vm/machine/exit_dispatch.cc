#include "vmm/vm/machine/exit_dispatch.h"

namespace vmm {

std::string ExitReasonName(uint32_t reason) {
  switch (reason) {
#define NAME(x) \
  case x:       \
    return #x;
    NAME(KVM_EXIT_UNKNOWN)
    NAME(KVM_EXIT_EXCEPTION)
    NAME(KVM_EXIT_IO)
    NAME(KVM_EXIT_HYPERCALL)
    NAME(KVM_EXIT_DEBUG)
    NAME(KVM_EXIT_HLT)
    NAME(KVM_EXIT_MMIO)
    NAME(KVM_EXIT_IRQ_WINDOW_OPEN)
    NAME(KVM_EXIT_SHUTDOWN)
    NAME(KVM_EXIT_FAIL_ENTRY)
    NAME(KVM_EXIT_INTR)
    NAME(KVM_EXIT_SET_TPR)
    NAME(KVM_EXIT_TPR_ACCESS)
    NAME(KVM_EXIT_NMI)
    NAME(KVM_EXIT_INTERNAL_ERROR)
    NAME(KVM_EXIT_SYSTEM_EVENT)
    NAME(KVM_EXIT_IOAPIC_EOI)
    NAME(KVM_EXIT_X86_RDMSR)
    NAME(KVM_EXIT_X86_WRMSR)
#undef NAME
    default:
      return "exit reason " + std::to_string(reason);
  }
}

ExitAction StopWithVcpuError(VcpuContext& ctx, const std::string& what) {
  ctx.control.RequestStop(StopReason::kError, "vCPU " + std::to_string(ctx.vcpu.id()) + ": " +
                                                  what + "; " + kvm::DescribeRegisters(ctx.vcpu));
  return ExitAction::kStop;
}

}  // namespace vmm
