// DSDT, ACPI 6.5 §5.2.11.1: the sleep-state package the VMM's PM1_CNT understands and the
// legacy devices that have no other enumeration (the guest has no PCI and no PnP BIOS).
#include <vector>

#include "vmm/contract/layout.h"
#include "vmm/vm/acpi/aml.h"
#include "vmm/vm/acpi/bytes.h"
#include "vmm/vm/acpi/table_builders.h"

namespace vmm::acpi {
namespace {

// Revision 2: integers in this definition block are 64 bits (§5.2.11.1).
constexpr uint8_t kDsdtRevision = 2;

// \_S5: {SLP_TYPa, SLP_TYPb, reserved, reserved} (§7.4, \_Sx). Writing SLP_TYPa with SLP_EN to
// PM1a_CNT is how the OS asks the VMM to power off; there is no PM1b block.
Aml SleepStateS5() {
  return Name("_S5_", Package({Integer(x86::kS5SleepType), Integer(x86::kS5SleepType), Integer(0),
                               Integer(0)}));
}

// COM1, a 16550 UART: Linux's 8250_pnp binds to PNP0501.
Aml Com1() {
  return Device("COM1", {
                            Name("_HID", EisaId("PNP0501")),
                            Name("_UID", Integer(0)),
                            Name("_CRS", ResourceTemplate({
                                             IoPort(x86::kCom1Port, x86::kCom1Port, 1, 8),
                                             IrqNoFlags({x86::kCom1Irq}),
                                         })),
                        });
}

// The i8042 keyboard controller. Linux's i8042 PNP probe takes the first IO resource as the
// data port and the second as the command port, and with the FADT's 8042 flag set it would
// otherwise fall back to probing the ports blindly.
Aml Ps2Keyboard() {
  return Device("PS2K", {
                            Name("_HID", EisaId("PNP0303")),
                            Name("_CRS", ResourceTemplate({
                                             IoPort(x86::kI8042DataPort, x86::kI8042DataPort, 1, 1),
                                             IoPort(x86::kI8042CmdPort, x86::kI8042CmdPort, 1, 1),
                                             IrqNoFlags({1}),
                                         })),
                        });
}

// A virtio-mmio device: the window and an edge-triggered, active-high GSI (completions
// arrive through KVM irqfds, which are edge-triggered).
Aml VirtioMmio(size_t index, const VirtioMmioSlot& slot) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const std::string name = std::string("VR") + kHex[(index >> 4) & 0xF] + kHex[index & 0xF];
  const uint32_t gsi[] = {slot.gsi};
  return Device(name, {
                          Name("_HID", String("LNRO0005")),
                          Name("_UID", Integer(index)),
                          Name("_CCA", Integer(1)),  // cache-coherent DMA (ACPI 6.4 §6.2.17)
                          Name("_CRS", ResourceTemplate({
                                           Memory32Fixed(slot.base, slot.size),
                                           ExtendedInterrupt(gsi, InterruptOptions{}),
                                       })),
                      });
}

// The TPM: Linux's tpm_crb binds to _HID MSFT0101 (a string: it is not an EISA id) and maps
// the _CRS memory; the start method and control area come from the TPM2 table. No IRQ: the
// CRB device raises none and drivers poll.
Aml Tpm() {
  return Device("TPM0",
                {
                    Name("_HID", String("MSFT0101")),
                    Name("_UID", Integer(0)),
                    Name("_CRS", ResourceTemplate({Memory32Fixed(kTpmCrbBase, kTpmCrbSize)})),
                });
}

}  // namespace

Result<std::vector<uint8_t>> BuildDsdt(const PlatformDescription& platform) {
  // Devices go under \_SB_ (§5.3.1).
  std::vector<Aml> system_bus = {Com1(), Ps2Keyboard()};
  if (platform.tpm) system_bus.push_back(Tpm());
  if (platform.virtio_mmio.size() > 16) {
    return Error(ErrorKind::kInternal, "DSDT: more than 16 virtio-mmio devices");
  }
  for (size_t i = 0; i < platform.virtio_mmio.size(); ++i) {
    system_bus.push_back(VirtioMmio(i, platform.virtio_mmio[i]));
  }
  Aml body = SleepStateS5();
  body.Append(Scope("_SB_", system_bus));  // the DSDT body is at the root already
  ASSIGN_OR_RETURN(std::vector<uint8_t> aml, body.Take());
  return MakeTable("DSDT", kDsdtRevision, aml);
}

}  // namespace vmm::acpi
