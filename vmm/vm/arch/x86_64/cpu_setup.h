// Initial state of x86 vCPUs: CPUID, MSRs, local APIC wiring, and the registers each boot
// protocol requires of the boot CPU. Secondary CPUs are left in their reset state: the
// in-kernel local APIC starts them on INIT/SIPI exactly as hardware does.
//
//   auto cpuid = BuildCpuid(kvm.GetSupportedCpuid().value(), index, num_cpus, flavor);
//   RETURN_IF_ERROR(SetupBootCpuRegisters(bsp, mem, BootProtocol::kPvh, entry, start_info));
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "vmm/formats/kernel/kernel_image.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/memory/guest_memory.h"

namespace vmm::x86 {

inline constexpr uint64_t kBootGdtAddr = 0x500;
// Selectors in the boot GDT. The Linux 64-bit protocol fixes __BOOT_CS = 0x10 and
// __BOOT_DS = 0x18 (Documentation/arch/x86/boot.rst); PVH only needs flat 32-bit segments.
inline constexpr uint16_t kSelCode32 = 0x08;
inline constexpr uint16_t kSelCode64 = 0x10;
inline constexpr uint16_t kSelData = 0x18;
inline constexpr uint16_t kSelTss = 0x20;

// Guest CPUID for vCPU `index` of `num_cpus`: the host's KVM-supported leaves, with the
// hypervisor bit, this vCPU's APIC ID and topology, and CX16 hidden on kvm_pvm (DESIGN §6).
std::vector<kvm_cpuid_entry2> BuildCpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                         uint32_t index, uint32_t num_cpus, kvm::KvmFlavor flavor);

// CPUID, MSRs and LAPIC LINT0/LINT1 wiring, for every vCPU.
Result<void> SetupVcpuCommon(kvm::KvmVcpu& vcpu, const std::vector<kvm_cpuid_entry2>& cpuid);

// Writes the boot GDT (and, for the 64-bit protocol, identity page tables for 0..4 GiB) into
// guest memory and loads the boot CPU's registers: PVH enters 32-bit protected mode with
// EBX = start_info; Linux64 enters long mode with RSI = zero page.
Result<void> SetupBootCpuRegisters(kvm::KvmVcpu& vcpu, GuestMemory& mem,
                                   boot::BootProtocol protocol, uint64_t entry,
                                   uint64_t boot_data_gpa);

}  // namespace vmm::x86
