#include <gtest/gtest.h>

#include "vmm/vm/arch/x86_64/cpu_setup.h"

namespace vmm::x86 {
namespace {

std::vector<kvm_cpuid_entry2> Host() {
  std::vector<kvm_cpuid_entry2> v(3);
  v[0].function = 1;
  v[0].ecx = (1u << 13) | (1u << 0);
  v[0].ebx = 0xFF00ABCD;
  v[1].function = 0xB;
  v[1].edx = 7;
  v[2].function = 0x40000000;
  v[2].ebx = 0x4B4D564B;
  return v;
}

TEST(Cpuid, ApicIdAndCountFollowTheVcpu) {
  auto out = BuildCpuid(Host(), 3, 4, kvm::KvmFlavor::kHardware);
  EXPECT_EQ(out[0].ebx >> 24, 3u);
  EXPECT_EQ((out[0].ebx >> 16) & 0xFF, 4u);
  EXPECT_EQ(out[0].ebx & 0xFFFF, 0xABCDu);
  EXPECT_TRUE(out[0].edx & (1u << 28));
  EXPECT_EQ(out[1].edx, 3u);
  EXPECT_EQ(out[2].ebx, 0x4B4D564Bu);
}

TEST(Cpuid, HypervisorBitIsSet) {
  auto out = BuildCpuid(Host(), 0, 1, kvm::KvmFlavor::kHardware);
  EXPECT_TRUE(out[0].ecx & (1u << 31));
  EXPECT_FALSE(out[0].edx & (1u << 28));
}

TEST(Cpuid, Cx16IsHiddenOnlyOnKvmPvm) {
  EXPECT_TRUE(BuildCpuid(Host(), 0, 1, kvm::KvmFlavor::kHardware)[0].ecx & (1u << 13));
  EXPECT_FALSE(BuildCpuid(Host(), 0, 1, kvm::KvmFlavor::kPvm)[0].ecx & (1u << 13));
}

}  // namespace
}  // namespace vmm::x86
