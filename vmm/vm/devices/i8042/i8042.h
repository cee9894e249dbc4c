// The part of an i8042 keyboard controller a VM needs: the CPU reset line (command 0xFE,
// which Linux uses for reboot=k and as a fallback), the controller self-tests and command
// byte that Linux's i8042 driver probes, and a keyboard that acknowledges commands.
// No key input, no mouse.
//
//   I8042 kbd([&] { control.RequestStop(StopReason::kReset); });
//   pio.Insert(0x60, 1, kbd.data_port()); pio.Insert(0x64, 1, kbd.command_port());
#pragma once

#include <cstdint>
#include <deque>
#include <functional>

#include "vmm/vm/devices/io_bus.h"

namespace vmm::devices {

class I8042 {
 public:
  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}
  BusDevice* data_port() { return &data_; }
  BusDevice* command_port() { return &command_; }

 private:
  struct Port : BusDevice {
    Port(I8042* owner, bool is_command) : owner(owner), is_command(is_command) {}
    void Read(uint64_t offset, std::span<uint8_t> data) override;
    void Write(uint64_t offset, std::span<const uint8_t> data) override;
    I8042* owner;
    bool is_command;
  };
  uint8_t ReadData();
  uint8_t Status() const;
  void WriteData(uint8_t value);
  void WriteCommand(uint8_t value);
  void Push(uint8_t value);

  std::function<void()> on_reset_;
  Port data_{this, false};
  Port command_{this, true};
  std::deque<uint8_t> out_;      // bytes waiting for the CPU at port 0x60
  uint8_t pending_command_ = 0;  // a controller command waiting for its data byte
  uint8_t command_byte_ = 0x45;  // kbd interrupt on, system flag, translation
  uint8_t output_port_ = 0x01;   // bit 0: CPU not held in reset
};

}  // namespace vmm::devices
