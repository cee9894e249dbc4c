// The device table (vmm/contract/device_table.h) against the rest of the tree: each kind's
// sandbox role is a role sandbox/roles.cc defines, and the instances fit the mmio slots.
#include "vmm/contract/device_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "sandbox/roles.h"
#include "vmm/manager/config.h"
#include "vmm/manager/device_processes.h"

namespace vmm {
namespace {

TEST(DeviceTable, EveryKindRunsUnderARoleTheSandboxDefines) {
  const std::vector<std::string> roles = sandbox::RoleNames();
  for (const DeviceKind& k : kDeviceKinds) {
    SCOPED_TRACE(std::string(k.name));
    EXPECT_NE(std::find(roles.begin(), roles.end(), std::string(k.role)), roles.end());
    EXPECT_TRUE(sandbox::PolicyForRole(k.role).has_value());
  }
}

TEST(DeviceTable, NamesAreUniqueAndLookedUpByName) {
  std::set<std::string_view> names;
  for (const DeviceKind& k : kDeviceKinds) {
    EXPECT_TRUE(names.insert(k.name).second) << k.name;
    EXPECT_EQ(FindDeviceKind(k.name), &k);
    EXPECT_EQ(&GetDeviceKind(k.type), &k);
    EXPECT_GE(k.max_count, 1u);
    EXPECT_LE(k.max_count, kMaxVirtioDevices);
  }
  EXPECT_EQ(FindDeviceKind("net"), nullptr);
}

// The most devices a configuration can ask for fill the virtio-mmio slots exactly, in order.
TEST(DeviceTable, PlannedDevicesTakeTheSlotsInOrder) {
  VmConfig cfg;
  for (size_t i = 0; i < kMaxDisks; ++i) cfg.disks.push_back({"/d" + std::to_string(i), i == 0});
  cfg.rng = true;
  std::vector<PlannedDevice> devs = PlanDevices(cfg);
  ASSERT_EQ(devs.size(), kMaxVirtioDevices);
  for (size_t i = 0; i < devs.size(); ++i) EXPECT_EQ(devs[i].slot, i);
  EXPECT_EQ(devs[0].name, "blk0");
  EXPECT_EQ(devs[0].disk, &cfg.disks[0]);
  EXPECT_EQ(devs.back().name, "rng0");
  EXPECT_EQ(devs.back().kind, FindDeviceKind("rng"));
  EXPECT_EQ(
      DescribePlannedDevice(devs[0]),
      "virtio-blk0: /d0 (read-only), in its own process (vmm-device blk), mmio 0xd0000000 gsi 16");
  EXPECT_EQ(DescribePlannedDevice(devs.back()),
            "virtio-rng: in its own process (vmm-device rng), mmio 0xd0007000 gsi 23");
}

}  // namespace
}  // namespace vmm
