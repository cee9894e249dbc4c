// GuestRam: guest RAM as a device process sees it: the regions of a vhost-user memory table,
// each a guest-physical range backed by host memory the backend mapped from the RAM memfd.
//
//   GuestRam ram;
//   RETURN_IF_ERROR(ram.AddRegion({.guest_phys = 0, .size = 512 << 20, .host = base}));
//   std::span<uint8_t> buf = ram.Translate(gpa, len);   // empty unless inside ONE region
//
// GuestRam does not own the host memory: whoever mapped it (the vhost-user layer) keeps the
// mapping alive for as long as any SplitQueue or DescriptorChain made through it exists.
//
// Every byte behind these spans is shared with the guest, which can rewrite it from another
// vCPU at any moment (ARCHITECTURE.md §1: guest-controlled bytes are hostile). Fields the device
// acts on are read with LoadShared()/LoadAcquire() exactly once into a local, and only the
// local is used afterwards: see the TOCTOU notes in split_queue.cc and blk.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "base/result.h"

namespace vmm::virtio {

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

  const std::vector<RamRegion>& regions() const { return regions_; }

 private:
  std::vector<RamRegion> regions_;
};

// Loads of guest-shared little-endian fields (x86_64 is little-endian, virtio 1.x is LE).
// An aligned field is one atomic access, so it can neither tear nor be re-read later by the
// compiler (Linux READ_ONCE); an unaligned one (an indirect table may be anywhere) is copied
// byte by byte through volatile, once.
template <typename T>
T LoadShared(const uint8_t* p) {
  static_assert(std::is_integral_v<T>);
  if (reinterpret_cast<uintptr_t>(p) % sizeof(T) == 0) {
    return __atomic_load_n(reinterpret_cast<const T*>(p), __ATOMIC_RELAXED);
  }
  uint8_t bytes[sizeof(T)];
  const volatile uint8_t* v = p;
  for (size_t i = 0; i < sizeof(T); ++i) bytes[i] = v[i];
  T value;
  std::memcpy(&value, bytes, sizeof(T));
  return value;
}

template <typename T>
void StoreShared(uint8_t* p, T value) {
  static_assert(std::is_integral_v<T>);
  if (reinterpret_cast<uintptr_t>(p) % sizeof(T) == 0) {
    __atomic_store_n(reinterpret_cast<T*>(p), value, __ATOMIC_RELAXED);
    return;
  }
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  volatile uint8_t* v = p;
  for (size_t i = 0; i < sizeof(T); ++i) v[i] = bytes[i];
}

// Acquire: nothing the device reads after this load (ring entries, descriptors, buffers) is
// read before it. Pairs with the driver's barrier before its avail idx store (§2.7.13.3).
template <typename T>
T LoadAcquire(const uint8_t* p) {
  T value = LoadShared<T>(p);
  std::atomic_thread_fence(std::memory_order_acquire);
  return value;
}

// Release: everything the device wrote before (used elements, data, status bytes) is visible
// to a driver that sees this store. §2.7.8.2: len is set before the used idx is updated.
template <typename T>
void StoreRelease(uint8_t* p, T value) {
  std::atomic_thread_fence(std::memory_order_release);
  StoreShared<T>(p, value);
}

}  // namespace vmm::virtio
