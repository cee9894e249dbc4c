// Everything about a boot that can be decided before KVM is touched: the kernel and initrd
// read and checked, where each goes in guest memory, the command line and the memory map.
// Bad input is reported here with ErrorKind::kInvalidArgument, so `vmm run --dry-run` and
// the exit-code tests need no /dev/kvm.
//
//   ASSIGN_OR_RETURN(BootPlan plan, PlanBoot(spec, kvm::DetectFlavor()));
//   RETURN_IF_ERROR(LoadBootPlan(plan, mem, acpi_rsdp_gpa));   // writes guest memory
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/contract/vm_spec.h"
#include "vmm/formats/kernel/kernel_image.h"
#include "vmm/vm/acpi/tables.h"
#include "vmm/vm/arch/x86_64/e820.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/memory/guest_memory.h"

namespace vmm {

struct BootPlan {
  boot::KernelImage image;
  std::vector<uint8_t> kernel_bytes;
  std::vector<uint8_t> initrd_bytes;
  uint64_t initrd_gpa = 0;
  std::string cmdline;
  std::vector<x86::E820Entry> memory_map;
  uint64_t boot_data_gpa = 0;  // start_info or zero page
  // The kvm_pvm compatibility module runs (vmm/vm/compat/kvm_pvm): its kernel parameters are
  // already in `cmdline`.
  bool kvm_compat = false;
  std::string kvm_compat_why;  // "forced by --kvm-compat on", "the host's KVM is kvm_pvm", ...
  // With kvm_compat: the module's kernel parameters that went into `cmdline`, and those left
  // out because the user's --cmdline sets the same key (kernel_parameters.h).
  std::vector<std::string> kvm_compat_added;
  std::vector<std::string> kvm_compat_left_out;
};

// Reads a regular file of at most `max_bytes`; anything else (a FIFO, a device, a
// directory) is refused without blocking. Errors name `what` (the flag, "--kernel") and
// the path.
Result<std::vector<uint8_t>> ReadFileLimited(const std::string& path, uint64_t max_bytes,
                                             const std::string& what);

// `flavor`: the host's KVM as kvm::DetectFlavor() sees it, for --kvm-compat auto.
Result<BootPlan> PlanBoot(const VmSpec& spec, kvm::KvmFlavor flavor);

// Copies the kernel, initrd, command line and boot data (start_info or zero page) into guest
// memory. ACPI tables are written by the caller; their RSDP address is passed in.
Result<void> LoadBootPlan(const BootPlan& plan, GuestMemory& mem, uint64_t rsdp_gpa);

// The ACPI tables of a VM with `cpus` vCPUs, a TPM or not, `virtio_devices` virtio-mmio
// devices in slot order, and the event log at x86::kTpmEventLogAddr or not: what the VM
// process loads at x86::kAcpiTablesAddr and what the manager measures (one function, so the
// two are the same bytes).
Result<acpi::AcpiTables> BuildPlatformAcpi(uint32_t cpus, bool tpm, size_t virtio_devices,
                                           bool event_log);

// A human-readable summary for --dry-run.
std::string DescribeBootPlan(const BootPlan& plan);

}  // namespace vmm
