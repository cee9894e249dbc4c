// Guest RAM as a device process sees it: a GuestRam (base/guest_ram.h) over the
// regions of a vhost-user memory table, mapped by the back-end from the RAM memfd, which
// keeps the mapping alive for as long as any SplitQueue or DescriptorChain made through it
// exists; and the loads and stores of fields shared with the guest.
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

#include "base/guest_ram.h"
#include "base/result.h"

namespace vmm::virtio {

// The class itself is vmm::GuestRam (base/guest_ram.h); virtio code names it here.
using vmm::GuestRam;
using vmm::RamRegion;

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
