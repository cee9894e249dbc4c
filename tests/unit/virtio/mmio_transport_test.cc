// The state machine: creation, §3.1.1 initialization, feature negotiation, queues, reset.
#include "vmm/vm/virtio_mmio/mmio_transport.h"

#include <gtest/gtest.h>

#include "tests/unit/virtio/mmio_transport_fixture.h"

namespace vmm::virtio {
namespace {

using MmioTransportInit = MmioFixture;
using MmioTransportQueue = MmioFixture;

TEST(MmioTransportCreate, RefusesBadDescriptions) {
  RecordingDelegate d;
  auto bad = [&](auto mutate) {
    MmioDeviceInfo info = BlkLike();
    mutate(info);
    return !MmioTransport::Create(std::move(info), d).has_value();
  };
  EXPECT_FALSE(bad([](MmioDeviceInfo&) {}));
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.features &= ~kVirtioFVersion1; }));
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.features |= 1ull << 40; }));  // RING_RESET
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.features |= 1ull << 34; }));  // RING_PACKED
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.device_id = 0; }));
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.queue_max_sizes = {0}; }));
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.queue_max_sizes = {24}; }));
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.queue_max_sizes = {65536}; }));
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.queue_max_sizes.assign(kMmioMaxQueues + 1, 8); }));
  EXPECT_TRUE(bad([](MmioDeviceInfo& i) { i.config.resize(0x101); }));
  EXPECT_FALSE(bad([](MmioDeviceInfo& i) { i.config.resize(0x100); }));
  EXPECT_FALSE(bad([](MmioDeviceInfo& i) { i.queue_max_sizes = {1, 32768}; }));
}

TEST_F(MmioTransportInit, IdentifiesAsModernDevice) {
  EXPECT_EQ(R32(kMmioRegMagicValue), 0x74726976u);
  EXPECT_EQ(R32(kMmioRegVersion), 2u);
  EXPECT_EQ(R32(kMmioRegDeviceId), kVirtioIdBlock);
  EXPECT_EQ(R32(kMmioRegVendorId), kMmioVendorId);
  W32(kMmioRegDeviceFeaturesSel, 0);
  EXPECT_EQ(R32(kMmioRegDeviceFeatures), static_cast<uint32_t>(kOffered));
  W32(kMmioRegDeviceFeaturesSel, 1);
  EXPECT_EQ(R32(kMmioRegDeviceFeatures), 1u);  // VERSION_1 is bit 32
  W32(kMmioRegDeviceFeaturesSel, 2);
  EXPECT_EQ(R32(kMmioRegDeviceFeatures), 0u);
  EXPECT_EQ(R32(kMmioRegStatus), 0u);
  EXPECT_EQ(errors(), 0u);
}

TEST_F(MmioTransportInit, HappyPathActivatesWithQueueConfig) {
  UpToFeaturesOk();
  EXPECT_EQ(R32(kMmioRegStatus), 0x0Bu);  // §3.1.1 step 6: FEATURES_OK reads back
  W32(kMmioRegQueueSel, 0);
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  EXPECT_EQ(R32(kMmioRegQueueNumMax), 256u);
  SetupQueue(0, 128, 0x1'0000'1000, 0x1'0000'2000, 0x1'0000'3000);
  EXPECT_EQ(R32(kMmioRegQueueReady), 1u);
  EXPECT_EQ(delegate_.activations, 0);
  AddStatus(kVirtioStatusDriverOk);
  EXPECT_EQ(R32(kMmioRegStatus), 0x0Fu);
  ASSERT_EQ(delegate_.activations, 1);
  EXPECT_EQ(delegate_.activated_features, kOffered);
  EXPECT_EQ(t_->driver_features(), kOffered);
  ASSERT_EQ(delegate_.activated_queues.size(), 2u);
  const MmioQueue& q = delegate_.activated_queues[0];
  EXPECT_TRUE(q.ready);
  EXPECT_FALSE(delegate_.activated_queues[1].ready);
  QueueConfig c = q.ToQueueConfig(delegate_.activated_features);
  EXPECT_EQ(c.size, 128u);
  EXPECT_EQ(c.desc_gpa, 0x1'0000'1000u);
  EXPECT_EQ(c.avail_gpa, 0x1'0000'2000u);
  EXPECT_EQ(c.used_gpa, 0x1'0000'3000u);
  EXPECT_TRUE(c.event_idx);
  EXPECT_FALSE(c.indirect);
  W32(kMmioRegQueueNotify, 0);
  EXPECT_EQ(delegate_.notified, std::vector<uint32_t>{0});
  EXPECT_EQ(errors(), 0u);
}

TEST_F(MmioTransportInit, FeaturesOkRefusedWithoutVersion1) {
  UpToFeaturesOk(kVirtioRingFEventIdx);
  EXPECT_EQ(R32(kMmioRegStatus), 0x03u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kFeaturesRefused);
  EXPECT_EQ(t_->driver_features(), 0u);
}

TEST_F(MmioTransportInit, FeaturesOkRefusedForBitsNotOffered) {
  UpToFeaturesOk(kOffered | kVirtioRingFIndirectDesc);
  EXPECT_EQ(R32(kMmioRegStatus) & kVirtioStatusFeaturesOk, 0u);
  // A non-zero word beyond bit 63 is just as invalid.
  W32(kMmioRegStatus, 0);
  AddStatus(kVirtioStatusAcknowledge);
  AddStatus(kVirtioStatusDriver);
  AcceptFeatures(kOffered);
  W32(kMmioRegDriverFeaturesSel, 2);
  W32(kMmioRegDriverFeatures, 1);
  AddStatus(kVirtioStatusFeaturesOk);
  EXPECT_EQ(R32(kMmioRegStatus) & kVirtioStatusFeaturesOk, 0u);
  // A subset is fine.
  UpToFeaturesOk(kVirtioFVersion1);
  EXPECT_EQ(R32(kMmioRegStatus), 0x0Bu);
  EXPECT_EQ(t_->driver_features(), kVirtioFVersion1);
}

TEST_F(MmioTransportInit, DriverFeaturesFixedAfterFeaturesOk) {
  UpToFeaturesOk(kVirtioFVersion1);
  W32(kMmioRegDriverFeaturesSel, 0);
  W32(kMmioRegDriverFeatures, static_cast<uint32_t>(kVirtioRingFEventIdx));
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kFeaturesLocked);
  EXPECT_EQ(t_->driver_features(), kVirtioFVersion1);
}

TEST_F(MmioTransportInit, StatusOutOfOrderIsRefused) {
  W32(kMmioRegStatus, kVirtioStatusDriver);  // DRIVER without ACKNOWLEDGE
  EXPECT_EQ(R32(kMmioRegStatus), 0u);
  W32(kMmioRegStatus, kVirtioStatusAcknowledge);
  W32(kMmioRegStatus, kVirtioStatusAcknowledge | kVirtioStatusFeaturesOk);  // skips DRIVER
  EXPECT_EQ(R32(kMmioRegStatus), 1u);
  W32(kMmioRegStatus, 0x03);
  AcceptFeatures(kOffered);
  W32(kMmioRegStatus, 0x07);  // DRIVER_OK before FEATURES_OK
  EXPECT_EQ(R32(kMmioRegStatus), 3u);
  W32(kMmioRegStatus, 0x01);  // clears DRIVER
  EXPECT_EQ(R32(kMmioRegStatus), 3u);
  W32(kMmioRegStatus, 0x103);  // beyond the 8 status bits
  EXPECT_EQ(R32(kMmioRegStatus), 3u);
  EXPECT_EQ(errors(), 5u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kBadStatus);
  W32(kMmioRegStatus, 0x0F);  // several steps in one write are fine
  EXPECT_EQ(R32(kMmioRegStatus), 0x0Fu);
  EXPECT_EQ(delegate_.activations, 1);
}

TEST_F(MmioTransportInit, FailedStopsProgressUntilReset) {
  AddStatus(kVirtioStatusAcknowledge);
  AddStatus(kVirtioStatusFailed);
  EXPECT_EQ(R32(kMmioRegStatus), 0x81u);
  AddStatus(kVirtioStatusDriver);
  EXPECT_EQ(R32(kMmioRegStatus), 0x81u);
  W32(kMmioRegStatus, 0);
  AddStatus(kVirtioStatusAcknowledge);
  EXPECT_EQ(R32(kMmioRegStatus), 1u);
}

TEST_F(MmioTransportInit, ResetClearsEverything) {
  Activate();
  t_->RaiseInterrupt(kMmioIntUsedBuffer);
  W32(kMmioRegQueueSel, 1);
  W32(kMmioRegDeviceFeaturesSel, 1);
  W32(kMmioRegStatus, 0);
  EXPECT_EQ(delegate_.resets, 2);  // the one in UpToFeaturesOk and this one
  EXPECT_EQ(delegate_.interrupts, (std::vector<bool>{true, false}));
  EXPECT_EQ(R32(kMmioRegStatus), 0u);
  EXPECT_EQ(R32(kMmioRegInterruptStatus), 0u);
  EXPECT_EQ(t_->driver_features(), 0u);
  EXPECT_EQ(R32(kMmioRegDeviceFeatures), static_cast<uint32_t>(kOffered));  // sel back to 0
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);                                   // QueueSel back to 0
  for (const MmioQueue& q : t_->queues()) {
    EXPECT_FALSE(q.ready);
    EXPECT_EQ(q.size, 0u);
    EXPECT_EQ(q.desc_gpa | q.avail_gpa | q.used_gpa, 0u);
  }
  // Config bytes belong to the device and survive.
  EXPECT_EQ(t_->config().size(), 12u);
  // A fresh initialization works.
  Activate();
  EXPECT_EQ(delegate_.activations, 2);
}

TEST_F(MmioTransportQueue, MissingQueueReadsZeroAndRefusesWrites) {
  UpToFeaturesOk();
  W32(kMmioRegQueueSel, 2);
  EXPECT_EQ(R32(kMmioRegQueueNumMax), 0u);
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  W32(kMmioRegQueueNum, 8);
  W32(kMmioRegQueueReady, 1);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kNoSuchQueue);
  W32(kMmioRegQueueSel, UINT32_MAX);
  W32(kMmioRegQueueDescLow, 0x1000);
  EXPECT_EQ(errors(), 3u);
}

TEST_F(MmioTransportQueue, ReadyRefusesBadSizes) {
  UpToFeaturesOk();
  for (uint32_t num : {0u, 3u, 100u, 512u, 1u << 31}) {  // 512 > QueueNumMax of 256
    SetupQueue(0, num, 0x1000, 0x2000, 0x3000);
    EXPECT_EQ(R32(kMmioRegQueueReady), 0u) << num;
    EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kBadQueueConfig);
  }
  SetupQueue(1, 32, 0x1000, 0x2000, 0x3000);  // queue 1's max is 16
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  SetupQueue(1, 1, 0x1000, 0x2000, 0x3000);
  EXPECT_EQ(R32(kMmioRegQueueReady), 1u);
}

TEST_F(MmioTransportQueue, ReadyRefusesMisalignedOrWrappingRings) {
  UpToFeaturesOk();
  SetupQueue(0, 16, 0x1008, 0x2000, 0x3000);
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  SetupQueue(0, 16, 0x1000, 0x2001, 0x3000);
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  SetupQueue(0, 16, 0x1000, 0x2000, 0x3002);
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  SetupQueue(0, 16, 0xFFFF'FFFF'FFFF'FF00, 0x2000, 0x3000);  // 256 bytes of descriptors wrap
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  EXPECT_EQ(errors(), 4u);
  SetupQueue(0, 16, 0x1010, 0x2002, 0x3004);  // the minimum alignments (§2.7)
  EXPECT_EQ(R32(kMmioRegQueueReady), 1u);
}

TEST_F(MmioTransportQueue, ReadyRefusedBeforeFeaturesOkOrAfterDriverOk) {
  AddStatus(kVirtioStatusAcknowledge);
  AddStatus(kVirtioStatusDriver);
  SetupQueue(0, 16, 0x1000, 0x2000, 0x3000);
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kBadQueueReady);
  Activate();
  SetupQueue(1, 16, 0x1000, 0x2000, 0x3000);  // not set up before DRIVER_OK
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  W32(kMmioRegQueueReady, 2);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kBadQueueReady);
}

TEST_F(MmioTransportQueue, RegistersLockedWhileReadyAndAfterDriverOk) {
  UpToFeaturesOk();
  SetupQueue(0, 16, 0x1000, 0x2000, 0x3000);
  const uint64_t before = errors();
  W32(kMmioRegQueueNum, 32);
  W32(kMmioRegQueueDescLow, 0x8000);
  EXPECT_EQ(errors(), before + 2);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kQueueLocked);
  EXPECT_EQ(t_->queues()[0].size, 16u);
  EXPECT_EQ(t_->queues()[0].desc_gpa, 0x1000u);
  AddStatus(kVirtioStatusDriverOk);
  W32(kMmioRegQueueSel, 1);  // a queue that is not ready is locked too after DRIVER_OK
  W32(kMmioRegQueueNum, 8);
  EXPECT_EQ(t_->queues()[1].size, 0u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kQueueLocked);
}

TEST_F(MmioTransportQueue, WritingZeroToReadyStopsTheQueue) {
  UpToFeaturesOk();
  SetupQueue(0, 16, 0x1000, 0x2000, 0x3000);
  W32(kMmioRegQueueReady, 0);  // before DRIVER_OK: nothing is running
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  EXPECT_TRUE(delegate_.stopped.empty());
  W32(kMmioRegQueueReady, 1);
  AddStatus(kVirtioStatusDriverOk);
  W32(kMmioRegQueueReady, 0);
  EXPECT_EQ(R32(kMmioRegQueueReady), 0u);
  EXPECT_EQ(delegate_.stopped, std::vector<uint32_t>{0});
  W32(kMmioRegQueueNotify, 0);
  EXPECT_TRUE(delegate_.notified.empty());
  EXPECT_EQ(errors(), 1u);
}

TEST_F(MmioTransportQueue, NotifyOnlyForRunningQueues) {
  UpToFeaturesOk();
  SetupQueue(0, 16, 0x1000, 0x2000, 0x3000);
  W32(kMmioRegQueueNotify, 0);  // before DRIVER_OK (§3.1.1)
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kEarlyNotify);
  AddStatus(kVirtioStatusDriverOk);
  W32(kMmioRegQueueNotify, 1);  // exists, not ready
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kEarlyNotify);
  W32(kMmioRegQueueNotify, 7);
  W32(kMmioRegQueueNotify, 0x10000);  // NOTIFICATION_DATA is not offered: no masking
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kNoSuchQueue);
  W32(kMmioRegQueueNotify, 0);
  EXPECT_EQ(delegate_.notified, std::vector<uint32_t>{0});
}

}  // namespace
}  // namespace vmm::virtio
