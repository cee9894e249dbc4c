// A whole VM in one process: KVM VM and vCPUs, guest RAM, the platform devices (COM1, i8042,
// ACPI PM) and the ACPI tables. Later issues move virtio devices and the vTPM into processes
// of their own; this class keeps only what the vCPU role holds.
//
//   ASSIGN_OR_RETURN(auto machine, Machine::Create(spec, std::move(plan), kvm));
//   RunOutcome out = machine->Run();   // blocks until power-off, reset, signal or error
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/contract/vm_spec.h"
#include "vmm/vm/boot/elf_symbols.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/machine/boot_plan.h"
#include "vmm/vm/machine/vm_control.h"

namespace vmm {

struct RunOutcome {
  StopReason reason;
  std::string message;
  int signal = 0;               // with StopReason::kSignal
  std::string profile;          // with MachineOptions::profile
  std::string compat_summary;   // when the kvm_pvm compatibility module ran
  std::string exit_stats = {};  // with MachineOptions::exit_stats (exit_stats.h)
};

// Diagnostics that do not change what the guest sees (from VmSpec::diagnostics).
struct MachineOptions {
  bool profile = false;  // sample the guest RIP
  uint32_t profile_interval_us = 1000;
  std::shared_ptr<boot::SymbolTable> symbols;  // names for the profile, if known
  bool exit_stats = false;                     // count exits by reason, port, address
};

// A virtio device served by a device process over vhost-user (vmm/vm/virtio_mmio/
// vhost_mmio_device.h). The machine gives it the next virtio-mmio slot and GSI.
struct DeviceLink {
  std::string name;        // "blk0"
  uint32_t device_id = 0;  // virtio device id
  uint32_t config_size = 0;
  UniqueFd sock;  // connected vhost-user session
};

// With `tpm_data` (a connected socket to the vTPM process's guest data channel, swtpm
// protocol), the guest gets a TPM 2.0 on the CRB interface (vmm/vm/tpm_crb/tpm_frontend.h):
// registers at 0xFED40000, the command buffer a page of its own at 0xFED45000, and the ACPI
// TPM2 table and TPM0 device that announce them.
class Machine {
 public:
  static Result<std::unique_ptr<Machine>> Create(const VmSpec& spec, BootPlan plan,
                                                 const kvm::Kvm& kvm, MachineOptions options = {},
                                                 std::vector<DeviceLink> devices = {},
                                                 UniqueFd tpm_data = {});
  ~Machine();
  RunOutcome Run();

 private:
  struct Impl;
  explicit Machine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmm
