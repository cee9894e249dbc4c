// Routes each KVM exit of a vCPU to the handler registered for its exit reason. The machine
// registers the standard ones (port I/O, MMIO, shutdown, errors); the kvm_pvm compatibility
// module registers its own (emulation failures, MSR writes) on hosts that need it.
//
//   dispatcher.Register(KVM_EXIT_IO, [&](VcpuContext& c) { return HandleIo(c); });
//   ExitAction a = dispatcher.Dispatch(ctx);   // unknown reasons stop the VM with an error
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "vmm/kvm/kvm.h"
#include "vmm/machine/vm_control.h"

namespace vmm {

enum class ExitAction { kContinue, kStop };

struct VcpuContext {
  kvm::KvmVcpu& vcpu;
  VmControl& control;
};

using ExitHandler = std::function<ExitAction(VcpuContext&)>;

class ExitDispatcher {
 public:
  void Register(uint32_t exit_reason, ExitHandler handler);
  ExitAction Dispatch(VcpuContext& ctx) const;

 private:
  std::unordered_map<uint32_t, ExitHandler> handlers_;
};

// "KVM_EXIT_IO" etc.; "exit reason N" for ones we do not know.
std::string ExitReasonName(uint32_t reason);

// Stops the VM with an error naming the vCPU, what happened and its registers.
ExitAction StopWithVcpuError(VcpuContext& ctx, const std::string& what);

}  // namespace vmm
