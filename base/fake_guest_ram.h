// FakeGuestRam: guest RAM for tests and fuzzers, the one fake of GuestRam
// (base/guest_ram.h). Each region is its own heap buffer so that a sanitizer catches
// any access that steps past a region (even into an adjacent one).
//
//   FakeGuestRam mem({{.guest_phys = 0, .size = 1 << 20}});
//   mem.Put<uint16_t>(0x2002, 1);                        // test-side write, as the driver
//   SplitQueue::Create(mem.ram(), config);               // or just `mem`: it converts
//
// Test-side accessors abort on a range outside RAM: a test that does that is itself wrong.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <span>
#include <vector>

#include "base/guest_ram.h"

namespace vmm {

class FakeGuestRam {
 public:
  struct Region {
    uint64_t guest_phys = 0;
    uint64_t size = 0;
  };

  explicit FakeGuestRam(uint64_t size) : FakeGuestRam({Region{0, size}}) {}
  explicit FakeGuestRam(std::initializer_list<Region> layout)
      : FakeGuestRam(std::span<const Region>(layout.begin(), layout.size())) {}
  explicit FakeGuestRam(std::span<const Region> layout) {
    backing_.reserve(layout.size());
    for (const Region& r : layout) {
      backing_.emplace_back(r.size);
      if (!ram_.AddRegion({r.guest_phys, r.size, backing_.back().data()}).has_value()) abort();
    }
  }
  FakeGuestRam(const FakeGuestRam&) = delete;  // spans handed out point into backing_
  FakeGuestRam& operator=(const FakeGuestRam&) = delete;

  const GuestRam& ram() const { return ram_; }
  // A FakeGuestRam goes wherever a GuestRam is wanted.
  operator const GuestRam&() const { return ram_; }  // NOLINT: implicit on purpose

  // The host bytes of [gpa, gpa+len), as GuestRam::Translate (empty when not RAM).
  std::span<uint8_t> HostSpan(uint64_t gpa, uint64_t len) const { return ram_.Translate(gpa, len); }
  std::span<uint8_t> At(uint64_t gpa, uint64_t len) const {
    std::span<uint8_t> s = ram_.Translate(gpa, len);
    if (s.empty() && len != 0) abort();
    return s;
  }
  template <typename T>
  void Put(uint64_t gpa, T value) {
    std::memcpy(At(gpa, sizeof(T)).data(), &value, sizeof(T));
  }
  template <typename T>
  T Get(uint64_t gpa) const {
    T value;
    std::memcpy(&value, At(gpa, sizeof(T)).data(), sizeof(T));
    return value;
  }
  void Write(uint64_t gpa, std::span<const uint8_t> bytes) {
    if (!bytes.empty()) std::memcpy(At(gpa, bytes.size()).data(), bytes.data(), bytes.size());
  }
  std::vector<uint8_t> Read(uint64_t gpa, uint64_t len) const {
    std::span<uint8_t> s = At(gpa, len);
    return std::vector<uint8_t>(s.begin(), s.end());
  }

  // True when `host` lies wholly inside one region's backing buffer.
  bool Contains(std::span<const uint8_t> host) const {
    for (const Buffer& b : backing_) {
      auto begin = reinterpret_cast<uintptr_t>(b.data());
      auto p = reinterpret_cast<uintptr_t>(host.data());
      if (p >= begin && p - begin <= b.size() && host.size() <= b.size() - (p - begin)) {
        return true;
      }
    }
    return false;
  }

 private:
  // Zeroed, exactly `size` bytes (a sanitizer catches a step past the end) and 64-byte
  // aligned like the page-aligned mmap of real RAM, so guest alignment carries over to the
  // host (cmpxchg16b needs that).
  class Buffer {
   public:
    explicit Buffer(uint64_t size)
        : p_(static_cast<uint8_t*>(::operator new[](size, std::align_val_t{kAlign}))), size_(size) {
      std::memset(p_.get(), 0, size);
    }
    uint8_t* data() const { return p_.get(); }
    uint64_t size() const { return size_; }

   private:
    static constexpr size_t kAlign = 64;
    struct Delete {
      void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{kAlign}); }
    };
    std::unique_ptr<uint8_t[], Delete> p_;
    uint64_t size_;
  };
  std::vector<Buffer> backing_;
  GuestRam ram_;
};

}  // namespace vmm
