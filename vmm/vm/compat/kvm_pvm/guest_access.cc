#include "vmm/vm/compat/kvm_pvm/guest_access.h"

#include <cpuid.h>

#include <algorithm>
#include <cstring>

namespace vmm::compat::pvm {
namespace {

bool Aligned(const void* p, size_t n) { return (reinterpret_cast<uintptr_t>(p) & (n - 1)) == 0; }

template <typename T>
bool CopyAtomic(const uint8_t* src, uint8_t* dst, bool guest_is_src) {
  if (guest_is_src) {
    if (!Aligned(src, sizeof(T))) return false;
    T v = __atomic_load_n(reinterpret_cast<const T*>(src), __ATOMIC_RELAXED);
    std::memcpy(dst, &v, sizeof(T));
  } else {
    if (!Aligned(dst, sizeof(T))) return false;
    T v;
    std::memcpy(&v, src, sizeof(T));
    __atomic_store_n(reinterpret_cast<T*>(dst), v, __ATOMIC_RELAXED);
  }
  return true;
}

void Copy(const uint8_t* src, uint8_t* dst, size_t n, bool guest_is_src) {
  bool done = false;
  switch (n) {
    case 2:
      done = CopyAtomic<uint16_t>(src, dst, guest_is_src);
      break;
    case 4:
      done = CopyAtomic<uint32_t>(src, dst, guest_is_src);
      break;
    case 8:
      done = CopyAtomic<uint64_t>(src, dst, guest_is_src);
      break;
    default:
      break;
  }
  if (!done && n > 0) std::memcpy(dst, src, n);
}

bool HostHasCx16() {
  static const bool has = [] {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_CMPXCHG16B) != 0;
  }();
  return has;
}

}  // namespace

void CopyFromGuest(std::span<const uint8_t> guest, std::span<uint8_t> out) {
  Copy(guest.data(), out.data(), std::min(guest.size(), out.size()), true);
}

void CopyToGuest(std::span<uint8_t> guest, std::span<const uint8_t> in) {
  Copy(in.data(), guest.data(), std::min(guest.size(), in.size()), false);
}

Result<uint64_t> LoadEntry(std::span<const uint8_t> guest) {
  if (guest.size() == 8 && Aligned(guest.data(), 8)) {
    return __atomic_load_n(reinterpret_cast<const uint64_t*>(guest.data()), __ATOMIC_ACQUIRE);
  }
  if (guest.size() == 4 && Aligned(guest.data(), 4)) {
    return uint64_t{
        __atomic_load_n(reinterpret_cast<const uint32_t*>(guest.data()), __ATOMIC_ACQUIRE)};
  }
  return Error(ErrorKind::kInternal, "paging-structure entry is not a 4/8-byte aligned load");
}

Result<bool> CompareExchangeEntry(std::span<uint8_t> guest, uint64_t expected, uint64_t desired) {
  if (guest.size() == 8 && Aligned(guest.data(), 8)) {
    return __atomic_compare_exchange_n(reinterpret_cast<uint64_t*>(guest.data()), &expected,
                                       desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  }
  if (guest.size() == 4 && Aligned(guest.data(), 4)) {
    auto exp32 = static_cast<uint32_t>(expected);
    return __atomic_compare_exchange_n(reinterpret_cast<uint32_t*>(guest.data()), &exp32,
                                       static_cast<uint32_t>(desired), false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
  }
  return Error(ErrorKind::kInternal, "paging-structure entry is not 4/8-byte aligned on the host");
}

Result<Cmpxchg16Result> CompareExchange16(std::span<uint8_t> guest, uint64_t expected_lo,
                                          uint64_t expected_hi, uint64_t desired_lo,
                                          uint64_t desired_hi) {
  if (guest.size() != 16 || !Aligned(guest.data(), 16)) {
    // The host instruction would #GP the VMM itself on a misaligned operand.
    return Error(ErrorKind::kInternal, "cmpxchg16b operand is not 16-byte aligned on the host");
  }
  if (!HostHasCx16()) {
    return Error(ErrorKind::kUnsupported, "the host CPU lacks CMPXCHG16B (CPUID.1:ECX[13])");
  }
  uint64_t lo = expected_lo, hi = expected_hi;
  bool swapped;
  // Written out rather than __atomic on unsigned __int128: GCC sends that to libatomic,
  // which may fall back to a lock the guest does not take.
  asm volatile("lock cmpxchg16b %1"
               : "=@ccz"(swapped), "+m"(*reinterpret_cast<unsigned __int128*>(guest.data())),
                 "+a"(lo), "+d"(hi)
               : "b"(desired_lo), "c"(desired_hi)
               : "memory");
  return Cmpxchg16Result{swapped, lo, hi};
}

}  // namespace vmm::compat::pvm
