#include "base/guest_ram.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace vmm {
namespace {

// [a, a + a_size) and [b, b + b_size) intersect; sizes are non-zero and neither range wraps.
bool Overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

}  // namespace

Error GuestRangeNotRam(uint64_t gpa, uint64_t len) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "guest range [0x%llx, +0x%llx) is not RAM",
                static_cast<unsigned long long>(gpa), static_cast<unsigned long long>(len));
  return Error(ErrorKind::kInvalidArgument, buf);
}

Result<void> GuestRam::AddRegion(const RamRegion& region) {
  if (region.size == 0 || region.host == nullptr) {
    return InvalidArgument("guest RAM region is empty or has no host mapping");
  }
  if (region.guest_phys + region.size < region.guest_phys) {
    return InvalidArgument("guest RAM region wraps past the end of the address space");
  }
  // Host range must be addressable as one span: host + size may not wrap either.
  if (reinterpret_cast<uintptr_t>(region.host) + region.size <
      reinterpret_cast<uintptr_t>(region.host)) {
    return InvalidArgument("guest RAM region's host mapping wraps the address space");
  }
  if (regions_.size() >= kMaxRegions) {
    return InvalidArgument("too many guest RAM regions (at most " + std::to_string(kMaxRegions) +
                           ")");
  }
  for (const RamRegion& r : regions_) {
    if (Overlaps(r.guest_phys, r.size, region.guest_phys, region.size)) {
      return InvalidArgument("guest RAM regions overlap");
    }
  }
  regions_.push_back(region);
  return Ok();
}

std::span<uint8_t> GuestRam::Translate(uint64_t gpa, uint64_t len) const {
  if (len == 0) return {};
  for (const RamRegion& r : regions_) {
    if (gpa < r.guest_phys) continue;
    uint64_t offset = gpa - r.guest_phys;
    // offset < size and len <= size - offset: no addition, so nothing can overflow.
    if (offset >= r.size || len > r.size - offset) continue;
    return std::span<uint8_t>(r.host + offset, static_cast<size_t>(len));
  }
  return {};
}

Result<void> GuestRam::Read(uint64_t gpa, std::span<uint8_t> out) const {
  if (out.empty()) return Ok();
  std::span<uint8_t> src = Translate(gpa, out.size());
  if (src.empty()) return GuestRangeNotRam(gpa, out.size());
  std::memcpy(out.data(), src.data(), out.size());
  return Ok();
}

Result<void> GuestRam::Write(uint64_t gpa, std::span<const uint8_t> bytes) const {
  if (bytes.empty()) return Ok();
  std::span<uint8_t> dst = Translate(gpa, bytes.size());
  if (dst.empty()) return GuestRangeNotRam(gpa, bytes.size());
  std::memcpy(dst.data(), bytes.data(), bytes.size());
  return Ok();
}

}  // namespace vmm
