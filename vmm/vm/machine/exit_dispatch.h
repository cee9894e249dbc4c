// What a vCPU thread does after an exit, and how it stops the VM on one it cannot handle.
// The exit itself is decoded by exit_decode.h and matched in Machine (machine.cc).
//
//   VcpuContext ctx{vcpu, control};
//   return StopWithVcpuError(ctx, "unhandled KVM exit " + ExitReasonName(reason));
#pragma once

#include <cstdint>
#include <string>

#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/machine/vm_control.h"

namespace vmm {

enum class ExitAction { kContinue, kStop };

struct VcpuContext {
  kvm::KvmVcpu& vcpu;
  VmControl& control;
};

// "KVM_EXIT_IO" etc.; "exit reason N" for ones we do not know.
std::string ExitReasonName(uint32_t reason);

// Stops the VM with an error naming the vCPU, what happened and its registers.
ExitAction StopWithVcpuError(VcpuContext& ctx, const std::string& what);

}  // namespace vmm
