// The guest-physical memory map of an x86_64 VM, in one place: the contract between the
// manager (dry-run, measurement), the boot image parsers and the VM process.
//
//   0x0000_0000  real-mode IVT/BDA                       usable
//   0x0000_6000  PVH start_info + memory map              usable (guest reads, then reuses)
//   0x0000_7000  Linux zero page (boot_params)            usable
//   0x0000_9000  boot page tables (PML4, PDPT, PD)        usable
//   0x0002_0000  kernel command line (up to 64 KiB)       usable
//   0x0009_FC00  EBDA .. 1 MiB                            reserved
//   0x000A_0000  TCG event log (64 KiB; only with a vTPM)
//   0x000D_0000  kvm_pvm emulation window (one page, no memslot; only with the module on)
//   0x000E_0000  ACPI tables (RSDP first, 16-byte aligned) reserved (inside the hole above)
//   0x0010_0000  kernel load address                      usable .. top of low RAM
//   0xC000_0000  32-bit MMIO hole (IOAPIC, LAPIC, CRB, virtio-mmio)  not RAM
//   0x1_0000_0000 RAM above 4 GiB when the VM has more than 3 GiB
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmm::x86 {

inline constexpr uint64_t kPvhStartInfoAddr = 0x6000;
inline constexpr uint64_t kPvhMemmapAddr = 0x6100;  // after start_info (56 bytes), before 0x7000
inline constexpr uint64_t kPvhMemmapMaxEntries = (0x7000 - kPvhMemmapAddr) / 24;
inline constexpr uint64_t kZeroPageAddr = 0x7000;
inline constexpr uint64_t kBootPml4Addr = 0x9000;
inline constexpr uint64_t kBootPdptAddr = 0xA000;
inline constexpr uint64_t kBootPdAddr = 0xB000;  // 4 PDs: 0xB000..0xEFFF, identity map 4 GiB
inline constexpr uint64_t kBootPdCount = 4;
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;  // including the NUL
inline constexpr uint64_t kEbdaStart = 0x9FC00;
// The TCG event log of measured boot (ACPI TPM2 LASA/LAML): in the reserved hole where a PC
// has its VGA window, which this platform does not have. Only with a vTPM.
inline constexpr uint64_t kTpmEventLogAddr = 0xA0000;
inline constexpr uint64_t kTpmEventLogSize = 0x10000;
// compat/kvm_pvm/emulation_window.h: RAM the VM process keeps out of KVM's memslots while
// the kvm_pvm compatibility module is on. Inside the reserved hole, below the ACPI tables.
inline constexpr uint64_t kCompatWindowAddr = 0xD0000;
inline constexpr uint64_t kAcpiTablesAddr = 0xE0000;
inline constexpr uint64_t kAcpiTablesMax = 0x20000;  // up to 1 MiB
inline constexpr uint64_t kHighMemStart = 0x100000;  // 1 MiB
inline constexpr uint64_t kKernelLoadAddr = 0x100000;

inline constexpr uint64_t kMmioHoleStart = 0xC0000000;
inline constexpr uint64_t kMmioHoleEnd = 0x100000000;

// virtio-mmio devices (virtio 1.2 §4.2): one 4 KiB page each at the bottom of the hole, a
// 0x200-byte register window, and GSIs 16.. (IOAPIC-only pins, no ISA legacy).
inline constexpr uint64_t kVirtioMmioBase = 0xD0000000;
inline constexpr uint64_t kVirtioMmioStride = 0x1000;
inline constexpr uint64_t kVirtioMmioSize = 0x200;
inline constexpr uint32_t kVirtioMmioFirstGsi = 16;
inline constexpr uint32_t kMaxVirtioMmioDevices = 8;  // GSIs 16..23
// Where the virtio device in slot `i` (0..kMaxVirtioMmioDevices-1) lives.
constexpr uint64_t VirtioMmioBase(size_t i) { return kVirtioMmioBase + i * kVirtioMmioStride; }
constexpr uint32_t VirtioMmioGsi(size_t i) {
  return kVirtioMmioFirstGsi + static_cast<uint32_t>(i);
}
inline constexpr uint64_t kIoApicAddr = 0xFEC00000;
// The TPM's CRB register window: the fixed PC address (TCG PC Client PTP §5.4, §6.5.3).
// vmm/vm/tpm_crb/crb_device.h lays out the window and its command buffer from here; the ACPI
// tables describe it.
inline constexpr uint64_t kTpmCrbBase = 0xFED40000;
inline constexpr uint64_t kLapicAddr = 0xFEE00000;

inline constexpr uint64_t kMinMemory = 32ull << 20;  // the test guest needs far less; Linux ~64M

// Legacy I/O ports of the platform devices.
inline constexpr uint16_t kCom1Port = 0x3F8;
inline constexpr uint8_t kCom1Irq = 4;
inline constexpr uint16_t kI8042DataPort = 0x60;
inline constexpr uint16_t kI8042CmdPort = 0x64;
// ACPI fixed-hardware blocks (FADT). Our own choice, clear of the legacy ISA devices.
inline constexpr uint16_t kPm1aEvtPort = 0x600;  // 4 bytes: PM1_STS, PM1_EN
inline constexpr uint16_t kPm1aCntPort = 0x604;  // 2 bytes: PM1_CNT
inline constexpr uint16_t kPmTmrPort = 0x608;    // 4 bytes: 24-bit PM timer (3.579545 MHz)
inline constexpr uint8_t kSciIrq = 9;
inline constexpr uint8_t kS5SleepType = 5;  // SLP_TYP value in the DSDT's \_S5 package

}  // namespace vmm::x86
