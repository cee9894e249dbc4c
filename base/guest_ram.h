// GuestRam: guest-physical memory as host bytes, the one guest-physical interface: a device
// process's view (the regions of its vhost-user memory table, vmm/virtio, vmm/vhost_user)
// and the kvm_pvm completer's (GuestMemory::ram() in the VM process; its page walk and
// linear accesses are layers on top, vmm/compat/kvm_pvm). GuestMemory (vmm/memory) owns the
// VM process's RAM and still has its own Span/Read/Write for the boot-time loaders.
// Each region is a guest-physical range backed by host memory that someone else mapped.
//
//   GuestRam ram;
//   RETURN_IF_ERROR(ram.AddRegion({.guest_phys = 0, .size = 512 << 20, .host = base}));
//   std::span<uint8_t> buf = ram.Translate(gpa, len);   // empty unless inside ONE region
//
// GuestRam does not own the host memory: whoever mapped it keeps the mapping alive for as
// long as the GuestRam and any span made through it exist. Tests use FakeGuestRam
// (fake_guest_ram.h). Every byte behind these spans may be shared with the guest, which can
// rewrite it at any moment (ARCHITECTURE.md §1: guest-controlled bytes are hostile).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace vmm {

struct RamRegion {
  uint64_t guest_phys = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;  // borrowed: `size` bytes mapped by the caller
};

class GuestRam {
 public:
  // vhost-user's memory table holds at most VHOST_USER_MAX_RAM_SLOTS (509 in QEMU); our
  // manager hands over two (below and above the 32-bit MMIO hole). Lookup is linear.
  static constexpr size_t kMaxRegions = 64;

  GuestRam() = default;

  // Refuses an empty or host-less region, a guest range that wraps past 2^64, one whose host
  // range wraps the address space, one that overlaps a region already added, and more than
  // kMaxRegions. Adjacent regions stay separate: a buffer may not straddle them.
  Result<void> AddRegion(const RamRegion& region);

  // The host bytes of [gpa, gpa + len) if the whole range lies inside one region, else an
  // empty span. len == 0 also gives an empty span. Never overflows, whatever gpa and len are.
  std::span<uint8_t> Translate(uint64_t gpa, uint64_t len) const;

  // Bounds-checked copies: the whole of [gpa, gpa + size) must lie inside one region, else
  // nothing is copied and the Error (kInvalidArgument) names the range. Zero bytes always
  // succeed. Plain memcpy: for guest-shared fields use the loads and stores of the caller's
  // layer (virtio/guest_ram.h, compat/kvm_pvm/guest_access.h).
  Result<void> Read(uint64_t gpa, std::span<uint8_t> out) const;
  Result<void> Write(uint64_t gpa, std::span<const uint8_t> bytes) const;

  const std::vector<RamRegion>& regions() const { return regions_; }

 private:
  std::vector<RamRegion> regions_;
};

// kInvalidArgument: "guest range [0xGPA, +0xLEN) is not RAM", the error of a guest access that
// does not lie inside the guest's RAM.
Error GuestRangeNotRam(uint64_t gpa, uint64_t len);

}  // namespace vmm
