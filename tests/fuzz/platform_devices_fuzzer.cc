// Guest-controlled port I/O against the platform devices of the vCPU process: any sequence
// of reads and writes of any width at any port must leave the VMM defined and bounded.
// Input: records of 4 bytes {port low, port high, width/dir, value}.
#include <cstdint>
#include <cstring>

#include "vmm/contract/layout.h"
#include "vmm/vm/devices/acpi_pm/acpi_pm.h"
#include "vmm/vm/devices/i8042/i8042.h"
#include "vmm/vm/devices/io_bus.h"
#include "vmm/vm/devices/uart/uart16550.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmm;
  size_t sunk = 0;
  devices::Uart16550 uart([&](uint8_t) { ++sunk; }, [](bool) {});
  devices::I8042 kbd([] {});
  devices::AcpiPm pm([] {});
  devices::IoBus bus;
  if (!bus.Insert(x86::kCom1Port, 8, &uart) ||
      !bus.Insert(x86::kI8042DataPort, 1, kbd.data_port()) ||
      !bus.Insert(x86::kI8042CmdPort, 1, kbd.command_port()) ||
      !bus.Insert(x86::kPm1aEvtPort, devices::AcpiPm::kSize, &pm)) {
    __builtin_trap();
  }
  static const uint16_t kPorts[] = {0x3F8, 0x3F9, 0x3FA, 0x3FB, 0x3FC, 0x3FD, 0x3FE, 0x3FF,
                                    0x60,  0x64,  0x600, 0x602, 0x604, 0x608, 0x609, 0x60B};
  for (size_t i = 0; i + 4 <= size; i += 4) {
    uint16_t port = (data[i] & 0x80) ? static_cast<uint16_t>(data[i] | (data[i + 1] << 8))
                                     : kPorts[data[i] & 0x0F];
    size_t width = size_t{1} << (data[i + 2] & 0x3);  // 1, 2, 4, 8
    bool write = data[i + 2] & 0x4;
    uint8_t buf[8];
    std::memset(buf, data[i + 3], sizeof(buf));
    if (write) {
      bus.Write(port, std::span<const uint8_t>(buf, width));
    } else {
      bus.Read(port, std::span<uint8_t>(buf, width));
    }
    if (data[i + 2] & 0x8) uart.Receive(std::span<const uint8_t>(&data[i + 3], 1));
  }
  return 0;
}
