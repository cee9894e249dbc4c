// FADT and FACS, ACPI 6.5 §5.2.9 and §5.2.10.
//
// A full (not hardware-reduced) ACPI platform: the VMM implements the PM1a event and control
// blocks and the PM timer at the ports in layout.h, raises the SCI on IRQ 9, and has no SMM,
// so the OS finds the machine already in ACPI mode (PM1_CNT.SCI_EN must read as 1).
#include <string>

#include "vmm/contract/layout.h"
#include "vmm/vm/acpi/bytes.h"
#include "vmm/vm/acpi/table_builders.h"

namespace vmm::acpi {
namespace {

constexpr uint8_t kFadtRevision = 6;      // ACPI 6.x
constexpr uint8_t kFadtMinorVersion = 5;  // ACPI 6.5
constexpr uint8_t kPm1EvtLen = 4;         // PM1_STS + PM1_EN, 2 bytes each (§4.8)
constexpr uint8_t kPm1CntLen = 2;         // PM1_CNT
constexpr uint8_t kPmTmrLen = 4;          // PM_TMR

// IAPC_BOOT_ARCH, §5.2.9.3 (Table 5.11).
constexpr uint16_t kBootLegacyDevices = 1 << 0;    // COM1 and the keyboard are ISA-style devices
constexpr uint16_t kBoot8042 = 1 << 1;             // i8042 present: Linux keeps its i8042 driver
                                                   // (no FIRMWARE_ABSENT) and probes PNP0303
constexpr uint16_t kBootVgaNotPresent = 1 << 2;    // no VGA: the OS must not poke 0x3B0/0xA0000
constexpr uint16_t kBootMsiNotSupported = 1 << 3;  // no PCI, so no MSI (Linux: pci_no_msi())
constexpr uint16_t kBootNoCmosRtc = 1 << 5;        // layout.h has no RTC at 0x70: the OS must not
                                             // register the CMOS RTC (flip this if one is added)
// PCIe ASPM Controls (bit 4) stays 0: there is no PCIe.
constexpr uint16_t kIapcBootArch =
    kBootLegacyDevices | kBoot8042 | kBootVgaNotPresent | kBootMsiNotSupported | kBootNoCmosRtc;

// Fixed feature flags, §5.2.9 (Table 5.10).
constexpr uint32_t kFlagWbinvd = 1 << 0;        // must be 1 since ACPI 2.0; KVM runs WBINVD
constexpr uint32_t kFlagProcC1 = 1 << 2;        // C1 (HLT) works on every CPU
constexpr uint32_t kFlagSlpButton = 1 << 5;     // 1: no fixed-hardware sleep button
constexpr uint32_t kFlagFixRtc = 1 << 6;        // 1: no RTC_STS/RTC_EN wake in PM1 (no RTC)
constexpr uint32_t kFlagResetRegSup = 1 << 10;  // RESET_REG below works
// PWR_BUTTON (bit 4) stays 0: the power button is the fixed-feature one in PM1 (AcpiPm), which
// `vmm ctl shutdown` presses. TMR_VAL_EXT (bit 8) stays 0: the PM timer is 24 bits. HW_REDUCED_ACPI
// (bit 20) stays 0.
constexpr uint32_t kFadtFlags =
    kFlagWbinvd | kFlagProcC1 | kFlagSlpButton | kFlagFixRtc | kFlagResetRegSup;

constexpr uint8_t kResetValue = 0xFE;  // i8042 "pulse reset line", written to port 0x64

uint32_t Low32OrZero(uint64_t gpa) { return gpa <= 0xFFFFFFFF ? static_cast<uint32_t>(gpa) : 0; }

}  // namespace

void PutGas(std::vector<uint8_t>& out, uint8_t space_id, uint8_t bit_width, uint8_t access_size,
            uint64_t address) {
  PutU8(out, space_id);
  PutU8(out, bit_width);
  PutU8(out, 0);  // register bit offset
  PutU8(out, access_size);
  PutU64(out, address);
}

Result<std::vector<uint8_t>> BuildFadt(uint64_t facs_gpa, uint64_t dsdt_gpa) {
  using namespace vmm::x86;
  // §5.2.9: at most one of FIRMWARE_CTRL and X_FIRMWARE_CTRL may be non-zero.
  const uint32_t facs32 = Low32OrZero(facs_gpa);
  const uint64_t x_facs = facs32 != 0 ? 0 : facs_gpa;

  std::vector<uint8_t> b;            // the body; offsets in comments are from the table start
  PutU32(b, facs32);                 // 36 FIRMWARE_CTRL
  PutU32(b, Low32OrZero(dsdt_gpa));  // 40 DSDT
  PutU8(b, 0);                       // 44 reserved (ACPI 1.0 INT_MODEL)
  PutU8(b, 0);                       // 45 Preferred_PM_Profile: unspecified
  PutU16(b, kSciIrq);                // 46 SCI_INT
  PutU32(b, 0);                      // 48 SMI_CMD: no SMM, always in ACPI mode
  PutU8(b, 0);                       // 52 ACPI_ENABLE
  PutU8(b, 0);                       // 53 ACPI_DISABLE
  PutU8(b, 0);                       // 54 S4BIOS_REQ
  PutU8(b, 0);                       // 55 PSTATE_CNT
  PutU32(b, kPm1aEvtPort);           // 56 PM1a_EVT_BLK
  PutU32(b, 0);                      // 60 PM1b_EVT_BLK
  PutU32(b, kPm1aCntPort);           // 64 PM1a_CNT_BLK
  PutU32(b, 0);                      // 68 PM1b_CNT_BLK
  PutU32(b, 0);                      // 72 PM2_CNT_BLK
  PutU32(b, kPmTmrPort);             // 76 PM_TMR_BLK
  PutU32(b, 0);                      // 80 GPE0_BLK: no GPEs
  PutU32(b, 0);                      // 84 GPE1_BLK
  PutU8(b, kPm1EvtLen);              // 88 PM1_EVT_LEN
  PutU8(b, kPm1CntLen);              // 89 PM1_CNT_LEN
  PutU8(b, 0);                       // 90 PM2_CNT_LEN
  PutU8(b, kPmTmrLen);               // 91 PM_TMR_LEN
  PutU8(b, 0);                       // 92 GPE0_BLK_LEN
  PutU8(b, 0);                       // 93 GPE1_BLK_LEN
  PutU8(b, 0);                       // 94 GPE1_BASE
  PutU8(b, 0);                       // 95 CST_CNT: no _CST support
  PutU16(b, 101);                    // 96 P_LVL2_LAT: > 100 means no C2
  PutU16(b, 1001);                   // 98 P_LVL3_LAT: > 1000 means no C3
  PutU16(b, 0);                      // 100 FLUSH_SIZE (WBINVD flag set: ignored)
  PutU16(b, 0);                      // 102 FLUSH_STRIDE
  PutU8(b, 0);                       // 104 DUTY_OFFSET
  PutU8(b, 0);                       // 105 DUTY_WIDTH
  PutU8(b, 0);                       // 106 DAY_ALRM: no RTC
  PutU8(b, 0);                       // 107 MON_ALRM
  PutU8(b, 0);                       // 108 CENTURY
  PutU16(b, kIapcBootArch);          // 109 IAPC_BOOT_ARCH
  PutU8(b, 0);                       // 111 reserved
  PutU32(b, kFadtFlags);             // 112 Flags
  PutGas(b, kGasSystemIo, 8, kGasAccessByte, kI8042CmdPort);              // 116 RESET_REG
  PutU8(b, kResetValue);                                                  // 128 RESET_VALUE
  PutU16(b, 0);                                                           // 129 ARM_BOOT_ARCH
  PutU8(b, kFadtMinorVersion);                                            // 131 FADT Minor Version
  PutU64(b, x_facs);                                                      // 132 X_FIRMWARE_CTRL
  PutU64(b, dsdt_gpa);                                                    // 140 X_DSDT
  PutGas(b, kGasSystemIo, kPm1EvtLen * 8, kGasAccessWord, kPm1aEvtPort);  // 148 X_PM1a_EVT_BLK
  PutGas(b, 0, 0, 0, 0);                                                  // 160 X_PM1b_EVT_BLK
  PutGas(b, kGasSystemIo, kPm1CntLen * 8, kGasAccessWord, kPm1aCntPort);  // 172 X_PM1a_CNT_BLK
  PutGas(b, 0, 0, 0, 0);                                                  // 184 X_PM1b_CNT_BLK
  PutGas(b, 0, 0, 0, 0);                                                  // 196 X_PM2_CNT_BLK
  PutGas(b, kGasSystemIo, kPmTmrLen * 8, kGasAccessDword, kPmTmrPort);    // 208 X_PM_TMR_BLK
  PutGas(b, 0, 0, 0, 0);                                                  // 220 X_GPE0_BLK
  PutGas(b, 0, 0, 0, 0);                                                  // 232 X_GPE1_BLK
  PutGas(b, 0, 0, 0, 0);  // 244 SLEEP_CONTROL_REG: hardware-reduced only
  PutGas(b, 0, 0, 0, 0);  // 256 SLEEP_STATUS_REG
  PutU64(b, 0);           // 268 Hypervisor Vendor Identity
  if (kHeaderSize + b.size() != kFadtSize) {
    return Error(ErrorKind::kInternal, "FADT body is " + std::to_string(b.size()) + " bytes");
  }
  return MakeTable("FACP", kFadtRevision, b);
}

std::vector<uint8_t> BuildFacs() {
  std::vector<uint8_t> t;
  PutFixedString(t, "FACS", 4);
  PutU32(t, kFacsSize);  // Length
  PutU32(t, 0);          // Hardware Signature: fixed, the hardware never changes under S4
  PutU32(t, 0);          // Firmware Waking Vector: no S3
  PutU32(t, 0);          // Global Lock: free
  PutU32(t, 0);          // Flags: no S4BIOS, no 64-bit wake
  PutU64(t, 0);          // X_Firmware Waking Vector
  PutU8(t, 2);           // Version (ACPI 6.x)
  PutZeros(t, 3);        // reserved
  PutU32(t, 0);          // OSPM Flags
  PutZeros(t, 24);       // reserved
  return t;
}

}  // namespace vmm::acpi
