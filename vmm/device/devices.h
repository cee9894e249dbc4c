// The virtio device cores (vmm/virtio) as vhost-user back-end devices: what `vmm-device`
// serves. Each adapter borrows its core, which must outlive it.
//
//   BlkVhostDevice dev(blk);                        // blk: virtio::BlkDevice
//   vhost_user::Backend backend(dev, sock);
#pragma once

#include "vmm/contract/device_table.h"
#include "vmm/device/blk/blk.h"
#include "vmm/device/rng/rng.h"
#include "vmm/device/vhost_user_backend.h"
#include "vmm/device/vsock/vsock_device.h"
#include "vmm/formats/virtio/features.h"

namespace vmm::device {

// The device table (what the manager and the VM process are told) against the cores.
inline constexpr const DeviceKind& kBlkKind = GetDeviceKind(DeviceType::kBlk);
inline constexpr const DeviceKind& kRngKind = GetDeviceKind(DeviceType::kRng);
static_assert(kBlkKind.virtio_id == virtio::kVirtioIdBlock);
static_assert(kBlkKind.config_size == virtio::kBlkConfigSize);
static_assert(kRngKind.virtio_id == virtio::kVirtioIdEntropy);
static_assert(kRngKind.config_size == 0);  // §5.4.4: none
inline constexpr const DeviceKind& kVsockKind = GetDeviceKind(DeviceType::kVsock);
static_assert(kVsockKind.virtio_id == vsock::kVirtioIdVsock);
static_assert(kVsockKind.config_size == vsock::kConfigSize);
static_assert(kVsockKind.num_queues == vsock::kNumQueues);

// A device core as a vhost-user device: the name and queue count from the device table, the
// rest from the core. A core without a config space (rng, §5.4.4) or without feature
// negotiation beyond the transport's has none here either.
template <typename Core, DeviceType kType>
class CoreVhostDevice final : public vhost_user::VirtioDevice {
 public:
  explicit CoreVhostDevice(Core& core) : core_(core) {}
  const char* name() const override { return GetDeviceKind(kType).name.data(); }
  uint64_t features() const override { return core_.features(); }
  uint32_t num_queues() const override { return GetDeviceKind(kType).num_queues; }
  std::span<const uint8_t> config() const override {
    if constexpr (requires { core_.config(); }) {
      return core_.config();
    } else {
      return {};
    }
  }
  void SetDriverFeatures(uint64_t acked) override {
    if constexpr (requires { core_.SetDriverFeatures(acked); }) core_.SetDriverFeatures(acked);
  }
  virtio::QueueLimits queue_limits() const override { return core_.queue_limits(); }
  Result<virtio::QueueRun> ProcessQueue(uint32_t, virtio::SplitQueue& q) override {
    return core_.ProcessQueue(q);
  }

 private:
  Core& core_;
};

using BlkVhostDevice = CoreVhostDevice<virtio::BlkDevice, DeviceType::kBlk>;
using RngVhostDevice = CoreVhostDevice<virtio::RngDevice, DeviceType::kRng>;

}  // namespace vmm::device
