// Port-I/O and MMIO dispatch for devices emulated inside the vCPU process.
//
//   IoBus pio;
//   RETURN_IF_ERROR(pio.Insert(0x3F8, 8, &uart));   // overlapping ranges are refused
//   pio.Read(0x3FD, data);                           // unclaimed: all ones, like an empty bus
//
// The bus does not own the devices. Each device is called with its own lock held, so a
// device sees one access at a time even with several vCPUs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include "base/result.h"

namespace vmm::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the base the device was inserted at; `data` is 1, 2, 4 or 8 bytes.
  virtual void Read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class IoBus {
 public:
  Result<void> Insert(uint64_t base, uint64_t len, BusDevice* device);
  // True if a device claimed the access. Unclaimed reads return all ones.
  bool Read(uint64_t addr, std::span<uint8_t> data);
  bool Write(uint64_t addr, std::span<const uint8_t> data);

 private:
  struct Range {
    uint64_t len;
    BusDevice* device;
    std::unique_ptr<std::mutex> lock;
  };
  const Range* Find(uint64_t addr, uint64_t len, uint64_t* base) const;
  std::map<uint64_t, Range> ranges_;  // by base
};

}  // namespace vmm::devices
