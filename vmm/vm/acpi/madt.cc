// MADT ("APIC"), ACPI 6.5 §5.2.12: one local APIC per CPU, one IOAPIC, the ISA overrides.
#include <string>

#include "vmm/contract/layout.h"
#include "vmm/vm/acpi/bytes.h"
#include "vmm/vm/acpi/table_builders.h"

namespace vmm::acpi {
namespace {

constexpr uint8_t kMadtRevision = 5;  // ACPI 6.3/6.4
constexpr uint32_t kPcatCompat = 1;   // dual 8259s are present (masked by the OS)

// Interrupt Controller Structure types, §5.2.12 (Table 5.21).
constexpr uint8_t kTypeLocalApic = 0;
constexpr uint8_t kTypeIoApic = 1;
constexpr uint8_t kTypeSourceOverride = 2;
constexpr uint8_t kTypeLocalApicNmi = 4;

constexpr uint32_t kLocalApicEnabled = 1;  // §5.2.12.2; Online Capable stays 0

// MPS INTI flags, §5.2.12.5: polarity bits 1:0 (01 high, 11 low), trigger bits 3:2 (01 edge,
// 11 level); 0 means "conforms to the bus" (ISA: edge, active high).
constexpr uint16_t kIntiConforming = 0x0000;
constexpr uint16_t kIntiLevelActiveHigh = 0x000D;

void PutLocalApic(std::vector<uint8_t>& b, uint8_t uid, uint8_t apic_id) {  // §5.2.12.2
  PutU8(b, kTypeLocalApic);
  PutU8(b, 8);
  PutU8(b, uid);
  PutU8(b, apic_id);
  PutU32(b, kLocalApicEnabled);
}

void PutIoApic(std::vector<uint8_t>& b, uint8_t id, uint32_t address, uint32_t gsi_base) {
  PutU8(b, kTypeIoApic);  // §5.2.12.3
  PutU8(b, 12);
  PutU8(b, id);
  PutU8(b, 0);  // reserved
  PutU32(b, address);
  PutU32(b, gsi_base);
}

void PutSourceOverride(std::vector<uint8_t>& b, uint8_t isa_irq, uint32_t gsi, uint16_t flags) {
  PutU8(b, kTypeSourceOverride);  // §5.2.12.5
  PutU8(b, 10);
  PutU8(b, 0);  // bus: ISA
  PutU8(b, isa_irq);
  PutU32(b, gsi);
  PutU16(b, flags);
}

void PutLocalApicNmi(std::vector<uint8_t>& b, uint8_t uid, uint16_t flags, uint8_t lint) {
  PutU8(b, kTypeLocalApicNmi);  // §5.2.12.7
  PutU8(b, 6);
  PutU8(b, uid);
  PutU16(b, flags);
  PutU8(b, lint);
}

}  // namespace

Result<std::vector<uint8_t>> BuildMadt(const PlatformDescription& platform) {
  if (platform.num_cpus == 0 || platform.num_cpus > kMaxCpus) {
    return InvalidArgument("MADT: " + std::to_string(platform.num_cpus) + " CPUs, expected 1.." +
                           std::to_string(kMaxCpus));
  }
  std::vector<uint8_t> b;
  PutU32(b, static_cast<uint32_t>(x86::kLapicAddr));  // Local Interrupt Controller Address
  PutU32(b, kPcatCompat);
  // §5.2.12.1: the boot processor comes first; OSPM starts the others in MADT order.
  for (uint32_t i = 0; i < platform.num_cpus; ++i) {
    PutLocalApic(b, static_cast<uint8_t>(i), static_cast<uint8_t>(i));
  }
  PutIoApic(b, static_cast<uint8_t>(platform.num_cpus), static_cast<uint32_t>(x86::kIoApicAddr), 0);
  // The PIT's IRQ 0 is wired to IOAPIC pin 2 on PC-compatibles (pin 0 is the 8259 ExtINT).
  PutSourceOverride(b, 0, 2, kIntiConforming);
  // The SCI is a level-triggered, active-high (sharable) interrupt, §5.2.9 SCI_INT.
  PutSourceOverride(b, x86::kSciIrq, x86::kSciIrq, kIntiLevelActiveHigh);
  // LINT1 carries NMI on every CPU (0xFF: all processors).
  PutLocalApicNmi(b, 0xFF, kIntiConforming, 1);
  return MakeTable("APIC", kMadtRevision, b);
}

}  // namespace vmm::acpi
