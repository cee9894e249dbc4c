// KVM ioctl request numbers with their names, for seccomp rules and for printing them.
//
//   for (const KvmIoctl& k : kKnownKvmIoctls) if (k.request == req) return k.name;
//
// Structs that end in a flexible array take their numbers from base/kvm_abi.h: Debian 12's
// 6.1 headers give C++ different (wrong) numbers for them, and a filter built from a wrong
// number would kill the process on a call the role needs, or allow one it must not make.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <string_view>

#include "base/kvm_abi.h"

namespace vmm::sandbox {

struct KvmIoctl {
  unsigned long request;
  std::string_view name;
};

inline constexpr std::array<KvmIoctl, 35> kKnownKvmIoctls = {{
    {KVM_GET_API_VERSION, "KVM_GET_API_VERSION"},
    {KVM_CREATE_VM, "KVM_CREATE_VM"},
    {KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION"},
    {KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE"},
    {kvm::kKvmGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID"},
    {KVM_CREATE_VCPU, "KVM_CREATE_VCPU"},
    {KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION"},
    {KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR"},
    {KVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR"},
    {KVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP"},
    {KVM_CREATE_PIT2, "KVM_CREATE_PIT2"},
    {KVM_IRQ_LINE, "KVM_IRQ_LINE"},
    {kvm::kKvmSetGsiRouting, "KVM_SET_GSI_ROUTING"},
    {KVM_IRQFD, "KVM_IRQFD"},
    {KVM_IOEVENTFD, "KVM_IOEVENTFD"},
    {KVM_RUN, "KVM_RUN"},
    {KVM_GET_REGS, "KVM_GET_REGS"},
    {KVM_SET_REGS, "KVM_SET_REGS"},
    {KVM_GET_SREGS, "KVM_GET_SREGS"},
    {KVM_SET_SREGS, "KVM_SET_SREGS"},
    {KVM_GET_FPU, "KVM_GET_FPU"},
    {KVM_SET_FPU, "KVM_SET_FPU"},
    {KVM_GET_LAPIC, "KVM_GET_LAPIC"},
    {KVM_SET_LAPIC, "KVM_SET_LAPIC"},
    {kvm::kKvmGetMsrs, "KVM_GET_MSRS"},
    {kvm::kKvmSetMsrs, "KVM_SET_MSRS"},
    {kvm::kKvmSetCpuid2, "KVM_SET_CPUID2"},
    {KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS"},
    {KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS"},
    {KVM_SET_GUEST_DEBUG, "KVM_SET_GUEST_DEBUG"},
    {KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS"},
    {kvm::kKvmGetXsave, "KVM_GET_XSAVE"},
    {kvm::kKvmSetXsave, "KVM_SET_XSAVE"},
    {KVM_ENABLE_CAP, "KVM_ENABLE_CAP"},
    {KVM_X86_SET_MSR_FILTER, "KVM_X86_SET_MSR_FILTER"},
}};

// The name of a known request, or "" (the printer then shows only the number).
constexpr std::string_view KvmIoctlName(unsigned long request) {
  for (const KvmIoctl& k : kKnownKvmIoctls) {
    if (k.request == request) return k.name;
  }
  return "";
}

// Fixed-size structs: C and C++ agree; the values are those of the kernel's C headers.
static_assert(KVM_RUN == 0xae80 && KVM_GET_REGS == 0x8090ae81 && KVM_SET_REGS == 0x4090ae82);
static_assert(KVM_GET_SREGS == 0x8138ae83 && KVM_SET_SREGS == 0x4138ae84);
static_assert(KVM_IRQ_LINE == 0x4008ae61 && KVM_IRQFD == 0x4020ae76 && KVM_IOEVENTFD == 0x4040ae79);
static_assert(KVM_GET_VCPU_EVENTS == 0x8040ae9f && KVM_SET_VCPU_EVENTS == 0x4040aea0);
static_assert(KVM_SET_USER_MEMORY_REGION == 0x4020ae46);
static_assert(kvm::kKvmGetMsrs == 0xc008ae88);
static_assert(KVM_GET_FPU == 0x81a0ae8c && KVM_SET_FPU == 0x41a0ae8d);
static_assert(KVM_SET_GUEST_DEBUG == 0x4048ae9b);

}  // namespace vmm::sandbox
