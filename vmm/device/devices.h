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
#include "vmm/formats/virtio/features.h"

namespace vmm::device {

// The device table (what the manager and the VM process are told) against the cores.
inline constexpr const DeviceKind& kBlkKind = GetDeviceKind(DeviceType::kBlk);
inline constexpr const DeviceKind& kRngKind = GetDeviceKind(DeviceType::kRng);
static_assert(kBlkKind.virtio_id == virtio::kVirtioIdBlock);
static_assert(kBlkKind.config_size == virtio::kBlkConfigSize);
static_assert(kRngKind.virtio_id == virtio::kVirtioIdEntropy);
static_assert(kRngKind.config_size == 0);  // §5.4.4: none

class BlkVhostDevice final : public vhost_user::VirtioDevice {
 public:
  explicit BlkVhostDevice(virtio::BlkDevice& blk) : blk_(blk) {}
  const char* name() const override { return kBlkKind.name.data(); }
  uint64_t features() const override { return blk_.features(); }
  uint32_t num_queues() const override { return kBlkKind.num_queues; }
  std::span<const uint8_t> config() const override { return blk_.config(); }
  void SetDriverFeatures(uint64_t acked) override { blk_.SetDriverFeatures(acked); }
  virtio::QueueLimits queue_limits() const override { return blk_.queue_limits(); }
  Result<virtio::QueueRun> ProcessQueue(uint32_t, virtio::SplitQueue& q) override {
    return blk_.ProcessQueue(q);
  }

 private:
  virtio::BlkDevice& blk_;
};

class RngVhostDevice final : public vhost_user::VirtioDevice {
 public:
  explicit RngVhostDevice(virtio::RngDevice& rng) : rng_(rng) {}
  const char* name() const override { return kRngKind.name.data(); }
  uint64_t features() const override { return rng_.features(); }
  uint32_t num_queues() const override { return kRngKind.num_queues; }
  std::span<const uint8_t> config() const override { return {}; }  // §5.4.4: none
  void SetDriverFeatures(uint64_t) override {}
  virtio::QueueLimits queue_limits() const override { return rng_.queue_limits(); }
  Result<virtio::QueueRun> ProcessQueue(uint32_t, virtio::SplitQueue& q) override {
    return rng_.ProcessQueue(q);
  }

 private:
  virtio::RngDevice& rng_;
};

}  // namespace vmm::device
