// The virtio devices a VM can have, each served by a `vmm-device KIND` process: the one table
// the manager (which processes to start, under which sandbox role, what --dry-run says), the
// device process (its subcommands and role) and the VM process (the virtio-mmio front-end's
// device id and config size, checked against what the manager sent) read.
//
//   const DeviceKind* blk = FindDeviceKind("blk");   // nullptr for an unknown kind
//   for (const DeviceKind& k : kDeviceKinds) ...
//
// Shared by the manager and the VM process: includes nothing of vmm/ but vmm/common. The
// sandbox role names are those sandbox/roles.cc defines (a unit test checks each is a role);
// the virtio ids and config sizes are those of vmm/virtio (vmm/device/devices.h checks them).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vmm {

// The number of virtio-mmio slots (vmm/contract/layout.h): every device of every kind
// takes one.
inline constexpr size_t kMaxVirtioDevices = 8;

enum class DeviceType : uint8_t { kBlk, kRng, kVsock };

struct DeviceKind {
  DeviceType type;
  std::string_view name;  // "blk": the vmm-device subcommand; instances are blk0, blk1, ...
  uint32_t virtio_id;     // virtio 1.2 §5: 2 block, 4 entropy, 19 socket
  uint32_t config_size;   // bytes of device config space the front-end reads
  uint32_t num_queues;
  std::string_view role;     // the sandbox role its process runs under (sandbox/roles.cc)
  size_t max_count;          // instances per VM
  bool has_image;            // served from a disk image the manager opens and passes
  std::string_view summary;  // one line, for `vmm-device --help`
};

inline constexpr std::array<DeviceKind, 3> kDeviceKinds = {{
    {DeviceType::kBlk, "blk", 2, 60, 1, "device-blk",
     kMaxVirtioDevices - 1,  // with the rng or vsock, ValidateConfig counts the slots
     true, "virtio-blk (virtio 1.2 §5.2) over an image file"},
    {DeviceType::kRng, "rng", 4, 0, 1, "device-rng", 1, false,
     "virtio-rng (virtio 1.2 §5.4) from getrandom(2)"},
    // `vmm run --vsock`, or standalone (QEMU's vhost-user-vsock-pci).
    {DeviceType::kVsock, "vsock", 19, 8, 3, "device-vsock", 1, false,
     "virtio-vsock (virtio 1.2 §5.10) to host unix sockets"},
}};

constexpr const DeviceKind* FindDeviceKind(std::string_view name) {
  for (const DeviceKind& k : kDeviceKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

constexpr const DeviceKind& GetDeviceKind(DeviceType type) {
  for (const DeviceKind& k : kDeviceKinds) {
    if (k.type == type) return k;
  }
  return kDeviceKinds[0];  // unreachable: every DeviceType has a row
}

static_assert(GetDeviceKind(DeviceType::kBlk).name == "blk" &&
              GetDeviceKind(DeviceType::kRng).name == "rng" &&
              GetDeviceKind(DeviceType::kVsock).name == "vsock");

}  // namespace vmm
