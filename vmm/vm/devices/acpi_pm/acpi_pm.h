// ACPI fixed hardware (ACPI 6.5 section 4.8): the PM1a event and control blocks and the PM
// timer, at the ports the FADT announces (layout.h). Writing SLP_EN with the \_S5 sleep type
// powers the VM off; other sleep states are not offered.
//
//   AcpiPm pm([&] { control.RequestStop(StopReason::kPowerOff); });
//   pio.Insert(kPm1aEvtPort, 12, &pm);
#pragma once

#include <cstdint>
#include <functional>

#include "vmm/vm/devices/io_bus.h"

namespace vmm::devices {

class AcpiPm : public BusDevice {
 public:
  // Ports covered, from kPm1aEvtPort: PM1_STS(2) PM1_EN(2) PM1_CNT(2) pad(2) PM_TMR(4).
  static constexpr uint64_t kSize = 12;
  explicit AcpiPm(std::function<void()> on_power_off);

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  uint32_t TimerValue() const;
  std::function<void()> on_power_off_;
  uint16_t status_ = 0, enable_ = 0;
  uint16_t control_ = 1;  // SCI_EN: the platform is always in ACPI mode (no SMI_CMD)
  uint64_t start_ns_;
};

}  // namespace vmm::devices
