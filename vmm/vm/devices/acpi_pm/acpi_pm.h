// ACPI fixed hardware (ACPI 6.5 section 4.8): the PM1a event and control blocks and the PM
// timer, at the ports the FADT announces (layout.h). Writing SLP_EN with the \_S5 sleep type
// powers the VM off; other sleep states are not offered. The fixed-feature power button
// (section 4.8.2.2.1): PressPowerButton sets PWRBTN_STS, and the SCI is asserted while
// PWRBTN_STS and PWRBTN_EN are both set (the guest clears the status by writing 1 to it).
//
//   AcpiPm pm([&] { control.RequestStop(StopReason::kPowerOff); }, sci_line);
//   pio.Insert(kPm1aEvtPort, 12, &pm);
//   pm.PressPowerButton();   // `vmm ctl shutdown`, from the VM process's main thread
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "vmm/vm/devices/io_bus.h"
#include "vmm/vm/devices/irq_line.h"

namespace vmm::devices {

class AcpiPm : public BusDevice {
 public:
  // Ports covered, from kPm1aEvtPort: PM1_STS(2) PM1_EN(2) PM1_CNT(2) pad(2) PM_TMR(4).
  static constexpr uint64_t kSize = 12;
  static constexpr uint16_t kPwrBtn = 1 << 8;  // PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN
  explicit AcpiPm(std::function<void()> on_power_off, IrqLine sci = {});
  void PressPowerButton();

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  uint32_t TimerValue() const;
  void UpdateSciLocked();
  std::function<void()> on_power_off_;
  IrqLine sci_;
  std::mutex mu_;  // vCPU threads access the registers; the main thread presses the button
  bool sci_level_ = false;
  uint16_t status_ = 0, enable_ = 0;
  uint16_t control_ = 1;  // SCI_EN: the platform is always in ACPI mode (no SMI_CMD)
  uint64_t start_ns_;
};

}  // namespace vmm::devices
