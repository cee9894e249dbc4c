// The ACPI tables of an x86_64 VM, built as one blob for guest memory. Pure: no I/O.
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> blob,
//                    BuildTables({.num_cpus = 2, .virtio_mmio = {}}, x86::kAcpiTablesAddr));
//   memory.Write(x86::kAcpiTablesAddr, blob);  // the RSDP is at offset 0
//
// The blob holds, in order: RSDP, XSDT, FADT, FACS, DSDT, MADT (and TPM2), each at an
// address aligned as the spec asks, with every length, checksum and absolute address filled
// in for the given base address. BuildAcpiTables() also says where each table sits, for tests
// and for measured boot, which hashes "the ACPI tables".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vmm/contract/layout.h"

namespace vmm::acpi {

// xAPIC ids are 8 bits, 0xFF is the broadcast id, and the IOAPIC takes the id after the CPUs.
inline constexpr uint32_t kMaxCpus = 254;

// Identifiers written into every table header (ACPI 6.5 §5.2.6).
inline constexpr std::string_view kOemId = "CCVMM ";         // 6 bytes
inline constexpr std::string_view kOemTableId = "CCVMMPLT";  // 8 bytes
inline constexpr uint32_t kOemRevision = 1;
inline constexpr std::string_view kCreatorId = "CCVM";  // 4 bytes
inline constexpr uint32_t kCreatorRevision = 1;

// The TPM's CRB interface (TCG PC Client PTP §6.5.3; vmm/vm/tpm_crb/crb_device.h lays out the
// same window): locality 0's register page, whose CTRL_REQ register at +0x40 is the "control
// area" of the TPM2 table. Only locality 0 is described, since the guest gets only that one.
inline constexpr uint32_t kTpmCrbBase = static_cast<uint32_t>(x86::kTpmCrbBase);
inline constexpr uint32_t kTpmCrbSize = 0x1000;
inline constexpr uint64_t kTpmCrbControlArea = kTpmCrbBase + 0x40;

// What the guest should see.
// A virtio-mmio device window (virtio 1.2 §4.2.1) and its interrupt: Linux's virtio_mmio
// driver binds to _HID LNRO0005 with these two resources.
struct VirtioMmioSlot {
  uint32_t base = 0;
  uint32_t size = 0x200;
  uint32_t gsi = 0;
};

struct PlatformDescription {
  uint32_t num_cpus = 1;                    // 1..kMaxCpus; APIC id = ACPI processor uid = index
  std::vector<VirtioMmioSlot> virtio_mmio;  // at most 16
  // A TPM 2.0 behind a CRB interface: the MSFT0101 device in the DSDT and a TPM2 table
  // listed in the XSDT.
  bool tpm = false;
  // The TPM2 table's LAML/LASA: the TCG event log, in guest RAM reserved in e820. Both 0 =
  // no log announced (Linux then reads no ACPI log).
  uint32_t tpm_log_min_length = 0;
  uint64_t tpm_log_start = 0;
};

// Where one table sits in the blob.
struct TableLocation {
  std::string signature;  // "RSDP" for the RSDP (whose own signature is "RSD PTR "), else
                          // the table's 4-character signature ("XSDT", "FACP", "APIC", ...)
  uint32_t offset = 0;    // from the start of the blob; the table's address is base + offset
  uint32_t length = 0;    // bytes
};

struct AcpiTables {
  std::vector<uint8_t> bytes;         // copy to guest memory at the base address
  std::vector<TableLocation> tables;  // in blob order; tables[0] is the RSDP at offset 0

  // The table with this signature, or nullptr.
  const TableLocation* Find(std::string_view signature) const;
  // The bytes of one table (empty if `signature` is not in the blob).
  std::span<const uint8_t> TableBytes(std::string_view signature) const;
};

// Builds the tables for guest-physical address `base_gpa` (16-byte aligned: the RSDP must be,
// ACPI 6.5 §5.2.5.1). Fails with kInvalidArgument if num_cpus is 0 or above kMaxCpus, if
// base_gpa is misaligned, or if the blob would exceed `max_size` bytes or wrap the address
// space.
Result<AcpiTables> BuildAcpiTables(const PlatformDescription& platform, uint64_t base_gpa,
                                   uint64_t max_size = x86::kAcpiTablesMax);

// The blob alone: BuildAcpiTables(platform, base_gpa).bytes.
Result<std::vector<uint8_t>> BuildTables(const PlatformDescription& platform, uint64_t base_gpa);

}  // namespace vmm::acpi
