// A 16550A UART as Linux's 8250 driver probes it: scratch register, loopback with the modem
// lines wired back, FIFO identification in IIR, and the THRE interrupt that fires as soon as
// the transmitter-empty interrupt is enabled. Transmit is instantaneous (the sink takes the
// byte at once); receive is fed by the VMM (loopback now, a console later).
//
//   Uart16550 uart([&](uint8_t b) { out.Put(b); }, [&](bool level) { vm.SetIrqLine(4, level); });
//   pio.Insert(0x3F8, 8, &uart);
#pragma once

#include <cstdint>
#include <deque>
#include <functional>

#include "vmm/vm/devices/io_bus.h"
#include "vmm/vm/devices/irq_line.h"

namespace vmm::devices {

class Uart16550 : public BusDevice {
 public:
  using Sink = std::function<void(uint8_t)>;
  Uart16550(Sink sink, IrqLine irq) : sink_(std::move(sink)), irq_(std::move(irq)) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Queues bytes as if received on the line; returns how many fit in the receive FIFO.
  size_t Receive(std::span<const uint8_t> bytes);

  static constexpr size_t kFifoSize = 16;

 private:
  uint8_t ReadReg(uint64_t reg);
  void WriteReg(uint64_t reg, uint8_t value);
  uint8_t InterruptId() const;
  void UpdateIrq();

  Sink sink_;
  IrqLine irq_;
  std::deque<uint8_t> rx_;
  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, dll_ = 0x0C, dlm_ = 0;  // 9600 baud
  bool fifo_enabled_ = false;
  bool thre_pending_ = false;  // THR empty interrupt latched until IIR read or THR write
  bool irq_level_ = false;
};

}  // namespace vmm::devices
