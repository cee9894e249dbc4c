// KVM ioctls whose argument ends in a flexible array, redefined with the C layout.
//
// Debian 12's <linux/kvm.h> (Linux 6.1 uapi) declares those arrays with
// __DECLARE_FLEX_ARRAY, which in C++ puts an empty struct before the array: the array moves
// from offset 8 to 12 or 16, sizeof grows, and the ioctl numbers built from sizeof change.
// The kernel then answers ENOTTY (measured: KVM_SET_GSI_ROUTING 0x4010ae6a from C++ against
// the real 0x4008ae6a). So every such call goes through these headers, with the array
// placed right after them, as the kernel's C definition has it.
//
//   std::vector<uint8_t> buf = FlexBuffer<KvmCpuid2Header>(entries);
//   ioctl(fd, kKvmSetCpuid2, buf.data());
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace vmm::kvm {

struct KvmCpuid2Header {
  uint32_t nent;
  uint32_t padding;
};
struct KvmMsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
struct KvmIrqRoutingHeader {
  uint32_t nr;
  uint32_t flags;
};

inline constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, KvmCpuid2Header);
inline constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, KvmCpuid2Header);
inline constexpr unsigned long kKvmGetMsrs = _IOWR(KVMIO, 0x88, KvmMsrsHeader);
inline constexpr unsigned long kKvmSetMsrs = _IOW(KVMIO, 0x89, KvmMsrsHeader);
inline constexpr unsigned long kKvmSetGsiRouting = _IOW(KVMIO, 0x6a, KvmIrqRoutingHeader);
// struct kvm_xsave ends in a zero-length array that C++ sizes as 4 bytes more than C does.
struct KvmXsaveLegacy {
  uint32_t region[1024];
};
inline constexpr unsigned long kKvmGetXsave = _IOR(KVMIO, 0xa4, KvmXsaveLegacy);
inline constexpr unsigned long kKvmSetXsave = _IOW(KVMIO, 0xa5, KvmXsaveLegacy);

// The values C code gets from <linux/kvm.h>.
static_assert(kKvmGetSupportedCpuid == 0xc008ae05);
static_assert(kKvmSetCpuid2 == 0x4008ae90);
static_assert(kKvmSetMsrs == 0x4008ae89);
static_assert(kKvmGetXsave == 0x9000aea4 && kKvmSetXsave == 0x5000aea5);
static_assert(kKvmSetGsiRouting == 0x4008ae6a);
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16 &&
              sizeof(kvm_irq_routing_entry) == 48);

// Header (with its count field set to entries.size()) followed by the entries.
template <typename Header, typename Entry>
std::vector<uint8_t> FlexBuffer(std::span<const Entry> entries) {
  std::vector<uint8_t> buf(sizeof(Header) + entries.size_bytes(), 0);
  uint32_t count = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.data(), &count, sizeof(count));  // the count is the first field of each
  if (!entries.empty())
    std::memcpy(buf.data() + sizeof(Header), entries.data(), entries.size_bytes());
  return buf;
}

// The entries that follow a header in `buf`, given the count the kernel wrote back.
template <typename Header, typename Entry>
std::vector<Entry> FlexEntries(const std::vector<uint8_t>& buf) {
  uint32_t count = 0;
  std::memcpy(&count, buf.data(), sizeof(count));
  size_t room = (buf.size() - sizeof(Header)) / sizeof(Entry);
  std::vector<Entry> out(std::min<size_t>(count, room));
  if (!out.empty())
    std::memcpy(out.data(), buf.data() + sizeof(Header), out.size() * sizeof(Entry));
  return out;
}

}  // namespace vmm::kvm
