// A GuestMemoryAccess over a plain heap buffer, for unit tests and the fuzzer.
//
//   FakeGuestMemory ram(64 * 1024);          // guest-physical [0, 64 KiB) is "RAM"
//   ram.Put<uint64_t>(0x1000, 0x2003);       // a page-table entry
//   EXPECT_EQ(ram.Get<uint32_t>(0x2010), 0x1F80u);
//
// The buffer is exactly `size` bytes, so a sanitizer catches any access that slips past the
// bounds checks in HostSpan; it is 64-byte aligned like the page-aligned mmap of real RAM,
// so guest alignment carries over to the host (cmpxchg16b needs that).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

#include "base/bytes.h"
#include "vmm/vm/compat/kvm_pvm/guest_access.h"

namespace vmm::compat::pvm {

class FakeGuestMemory final : public GuestMemoryAccess {
 public:
  explicit FakeGuestMemory(uint64_t size)
      : buf_(static_cast<uint8_t*>(::operator new[](size, std::align_val_t{kAlign}))),
        bytes_(buf_.get(), size) {
    std::memset(buf_.get(), 0, size);
  }

  std::span<uint8_t> HostSpan(uint64_t gpa, uint64_t len) override {
    if (len == 0 || !InBounds(bytes_.size(), gpa, len)) return {};
    return bytes_.subspan(gpa, len);
  }

  template <typename T>
  void Put(uint64_t gpa, T value) {
    if (!StoreLe<T>(bytes_, gpa, value)) __builtin_trap();  // a broken test, not a guest
  }
  template <typename T>
  T Get(uint64_t gpa) const {
    auto v = LoadLe<T>(bytes_, gpa);
    if (!v) __builtin_trap();
    return *v;
  }

  std::span<uint8_t> bytes() const { return bytes_; }

 private:
  static constexpr size_t kAlign = 64;
  struct Delete {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{kAlign}); }
  };
  std::unique_ptr<uint8_t[], Delete> buf_;
  std::span<uint8_t> bytes_;
};

}  // namespace vmm::compat::pvm
