#include "vmm/vm/devices/io_bus.h"

#include <algorithm>

namespace vmm::devices {

Result<void> IoBus::Insert(uint64_t base, uint64_t len, BusDevice* device) {
  if (len == 0 || base + len < base) return Error(ErrorKind::kInternal, "bad bus range");
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + len) {
    return Error(ErrorKind::kInternal, "bus range overlaps another device");
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) {
      return Error(ErrorKind::kInternal, "bus range overlaps another device");
    }
  }
  ranges_.emplace(base, Range{len, device, std::make_unique<std::mutex>()});
  return Ok();
}

const IoBus::Range* IoBus::Find(uint64_t addr, uint64_t len, uint64_t* base) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  // The whole access must fall inside the device's range.
  if (addr - it->first >= it->second.len || len > it->second.len - (addr - it->first)) {
    return nullptr;
  }
  *base = it->first;
  return &it->second;
}

bool IoBus::Read(uint64_t addr, std::span<uint8_t> data) {
  uint64_t base = 0;
  const Range* r = Find(addr, data.size(), &base);
  if (r == nullptr) {
    std::fill(data.begin(), data.end(), 0xFF);
    return false;
  }
  std::lock_guard<std::mutex> guard(*r->lock);
  r->device->Read(addr - base, data);
  return true;
}

bool IoBus::Write(uint64_t addr, std::span<const uint8_t> data) {
  uint64_t base = 0;
  const Range* r = Find(addr, data.size(), &base);
  if (r == nullptr) return false;
  std::lock_guard<std::mutex> guard(*r->lock);
  r->device->Write(addr - base, data);
  return true;
}

}  // namespace vmm::devices
