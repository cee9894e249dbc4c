// Shared fixture for virtio-mmio transport tests: a delegate that records every callback, a
// blk-like device description (two queues, 12 config bytes) and driver-side helpers that
// access the registers the way Linux's virtio_mmio does (32-bit, read-modify-write status).
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "vmm/vm/virtio_mmio/mmio_transport.h"

namespace vmm::virtio::testing {

inline constexpr uint64_t kOffered = kVirtioFVersion1 | kVirtioRingFEventIdx | (1ull << 9);

// Records every callback; OnActivate can be told to fail.
struct RecordingDelegate : MmioTransportDelegate {
  void OnReset() override { ++resets; }
  Result<void> OnActivate(uint64_t features, std::span<const MmioQueue> queues) override {
    activated_features = features;
    activated_queues.assign(queues.begin(), queues.end());
    ++activations;
    if (fail_activate) return Error(ErrorKind::kProtocol, "backend refused");
    return Ok();
  }
  void OnQueueStop(uint32_t queue) override { stopped.push_back(queue); }
  void OnNotify(uint32_t queue) override { notified.push_back(queue); }
  void OnInterrupt(bool asserted) override { interrupts.push_back(asserted); }
  void OnConfigWrite(uint64_t offset, std::span<const uint8_t> data) override {
    config_writes.emplace_back(offset, std::vector<uint8_t>(data.begin(), data.end()));
  }

  int resets = 0, activations = 0;
  bool fail_activate = false;
  uint64_t activated_features = 0;
  std::vector<MmioQueue> activated_queues;
  std::vector<uint32_t> stopped, notified;
  std::vector<bool> interrupts;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> config_writes;
};

inline MmioDeviceInfo BlkLike() {
  MmioDeviceInfo info;
  info.device_id = kVirtioIdBlock;
  info.features = kOffered;
  info.queue_max_sizes = {256, 16};
  info.config = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  return info;
}

class MmioFixture : public ::testing::Test {
 protected:
  explicit MmioFixture(MmioDeviceInfo info = BlkLike()) {
    auto t = MmioTransport::Create(std::move(info), delegate_);
    if (!t.has_value()) ADD_FAILURE() << t.error().ToString();
    t_.emplace(std::move(t).value());
  }
  uint32_t R32(uint64_t off) {
    uint8_t b[4];
    t_->Read(off, b);
    return LoadLe<uint32_t>(b, 0).value();
  }
  void W32(uint64_t off, uint32_t v) {
    uint8_t b[4];
    StoreLe<uint32_t>(b, 0, v);
    t_->Write(off, b);
  }
  // Linux's virtio_add_status: read, OR in, write.
  void AddStatus(uint8_t bit) { W32(kMmioRegStatus, R32(kMmioRegStatus) | bit); }
  void AcceptFeatures(uint64_t f) {
    W32(kMmioRegDriverFeaturesSel, 0);
    W32(kMmioRegDriverFeatures, static_cast<uint32_t>(f));
    W32(kMmioRegDriverFeaturesSel, 1);
    W32(kMmioRegDriverFeatures, static_cast<uint32_t>(f >> 32));
  }
  void SetupQueue(uint32_t index, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used) {
    W32(kMmioRegQueueSel, index);
    W32(kMmioRegQueueNum, num);
    W32(kMmioRegQueueDescLow, static_cast<uint32_t>(desc));
    W32(kMmioRegQueueDescHigh, static_cast<uint32_t>(desc >> 32));
    W32(kMmioRegQueueDriverLow, static_cast<uint32_t>(avail));
    W32(kMmioRegQueueDriverHigh, static_cast<uint32_t>(avail >> 32));
    W32(kMmioRegQueueDeviceLow, static_cast<uint32_t>(used));
    W32(kMmioRegQueueDeviceHigh, static_cast<uint32_t>(used >> 32));
    W32(kMmioRegQueueReady, 1);
  }
  // §3.1.1 steps 1-6.
  void UpToFeaturesOk(uint64_t features = kOffered) {
    W32(kMmioRegStatus, 0);
    AddStatus(kVirtioStatusAcknowledge);
    AddStatus(kVirtioStatusDriver);
    AcceptFeatures(features);
    AddStatus(kVirtioStatusFeaturesOk);
  }
  void Activate() {
    UpToFeaturesOk();
    SetupQueue(0, 128, 0x1'0000'1000, 0x1'0000'2000, 0x1'0000'3000);
    AddStatus(kVirtioStatusDriverOk);
  }
  uint64_t errors() const { return t_->driver_errors(); }

  RecordingDelegate delegate_;
  std::optional<MmioTransport> t_;
};

}  // namespace vmm::virtio::testing

// The transport tests (only they include this header) name these unqualified.
namespace vmm::virtio {
using testing::BlkLike;
using testing::kOffered;
using testing::MmioFixture;
using testing::RecordingDelegate;
}  // namespace vmm::virtio
