// Guest accesses that are not state transitions: widths, directions, config space, and the
// owner side (interrupts, config updates, DEVICE_NEEDS_RESET).
#include "vmm/vm/virtio_mmio/mmio_transport.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/virtio/mmio_transport_fixture.h"

namespace vmm::virtio {
namespace {

using MmioTransportAccess = MmioFixture;
using MmioTransportConfig = MmioFixture;
using MmioTransportInterrupt = MmioFixture;

TEST_F(MmioTransportAccess, RegistersTakeOnlyAligned32BitAccesses) {
  for (size_t width : {1u, 2u, 8u}) {
    std::vector<uint8_t> buf(width, 0xCC);
    t_->Read(kMmioRegMagicValue, buf);
    EXPECT_EQ(buf, std::vector<uint8_t>(width, 0)) << width;
    std::vector<uint8_t> one(width, 0);
    one[0] = kVirtioStatusAcknowledge;
    t_->Write(kMmioRegStatus, one);
  }
  uint8_t four[4] = {1, 0, 0, 0};
  t_->Write(kMmioRegStatus + 1, four);
  t_->Read(kMmioRegMagicValue + 2, four);
  EXPECT_EQ(LoadLe<uint32_t>(four, 0).value(), 0u);
  t_->Read(0, std::span<uint8_t>());
  t_->Write(0, std::span<const uint8_t>());
  EXPECT_EQ(errors(), 10u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kBadAccess);
  EXPECT_EQ(R32(kMmioRegStatus), 0u);  // no write reached Status
}

TEST_F(MmioTransportAccess, DirectionAndUnknownRegistersCounted) {
  EXPECT_EQ(R32(kMmioRegQueueNum), 0u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kReadWriteOnly);
  W32(kMmioRegMagicValue, 0);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kWriteReadOnly);
  EXPECT_EQ(R32(kMmioRegMagicValue), kMmioMagicValue);
  EXPECT_EQ(R32(0x018), 0u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kUnknownRegister);
  EXPECT_EQ(R32(kMmioRegQueueReset), 0u);  // VIRTIO_F_RING_RESET not offered
  W32(kMmioRegQueueReset, 1);
  EXPECT_EQ(errors(), 5u);
}

TEST_F(MmioTransportAccess, NoSharedMemoryRegions) {
  W32(kMmioRegShmSel, 0);
  EXPECT_EQ(R32(kMmioRegShmLenLow), UINT32_MAX);
  EXPECT_EQ(R32(kMmioRegShmLenHigh), UINT32_MAX);
  EXPECT_EQ(R32(kMmioRegShmBaseLow), UINT32_MAX);
  EXPECT_EQ(R32(kMmioRegShmBaseHigh), UINT32_MAX);
  EXPECT_EQ(errors(), 0u);
}

TEST_F(MmioTransportAccess, OutsideTheWindowIsRefused) {
  for (uint64_t off : {kMmioWindowSize, uint64_t{0x1000}, UINT64_MAX - 3, UINT64_MAX}) {
    EXPECT_EQ(R32(off), 0u);
    W32(off, 0xFFFFFFFF);
  }
  EXPECT_EQ(errors(), 8u);
}

TEST_F(MmioTransportConfig, ReadsEveryWidthInside) {
  uint8_t b1[1], b2[2], b4[4], b8[8];
  t_->Read(kMmioConfigOffset + 11, b1);
  EXPECT_EQ(b1[0], 12);
  t_->Read(kMmioConfigOffset + 1, b2);  // byte alignment is allowed (§4.2.2 table)
  EXPECT_EQ(LoadLe<uint16_t>(b2, 0).value(), 0x0302);
  t_->Read(kMmioConfigOffset + 8, b4);
  EXPECT_EQ(LoadLe<uint32_t>(b4, 0).value(), 0x0C0B0A09u);
  t_->Read(kMmioConfigOffset, b8);
  EXPECT_EQ(LoadLe<uint64_t>(b8, 0).value(), 0x0807060504030201u);
  EXPECT_EQ(errors(), 0u);
}

TEST_F(MmioTransportConfig, OutOfRangeReadsZerosAndCounts) {
  uint8_t b4[4] = {0xCC, 0xCC, 0xCC, 0xCC}, b3[3], b16[16];
  t_->Read(kMmioConfigOffset + 10, b4);  // straddles the end
  EXPECT_EQ(LoadLe<uint32_t>(b4, 0).value(), 0u);
  t_->Read(kMmioConfigOffset + 12, std::span<uint8_t>(b4, 1));
  t_->Read(kMmioWindowSize - 1, std::span<uint8_t>(b4, 1));
  t_->Read(kMmioConfigOffset, b3);
  t_->Read(kMmioConfigOffset, b16);
  t_->Write(kMmioConfigOffset + 12, std::span<const uint8_t>(b4, 1));
  EXPECT_EQ(errors(), 6u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kConfigOutOfRange);
  EXPECT_TRUE(delegate_.config_writes.empty());
}

TEST_F(MmioTransportConfig, WritesGoToTheOwnerNotTheBytes) {
  const uint8_t v[2] = {0xAA, 0xBB};
  t_->Write(kMmioConfigOffset + 4, v);
  ASSERT_EQ(delegate_.config_writes.size(), 1u);
  EXPECT_EQ(delegate_.config_writes[0].first, 4u);
  EXPECT_EQ(delegate_.config_writes[0].second, (std::vector<uint8_t>{0xAA, 0xBB}));
  EXPECT_EQ(t_->config()[4], 5);
}

TEST_F(MmioTransportConfig, SetConfigBumpsGenerationAndNotifiesOnceActive) {
  const uint32_t gen = R32(kMmioRegConfigGeneration);
  const std::vector<uint8_t> next = {9, 9};
  ASSERT_TRUE(t_->SetConfig(next).has_value());
  EXPECT_NE(R32(kMmioRegConfigGeneration), gen);
  EXPECT_EQ(t_->config().size(), 2u);
  EXPECT_TRUE(delegate_.interrupts.empty());  // not before DRIVER_OK
  Activate();
  ASSERT_TRUE(t_->SetConfig(next).has_value());
  EXPECT_EQ(R32(kMmioRegInterruptStatus), kMmioIntConfigChange);
  EXPECT_EQ(delegate_.interrupts, std::vector<bool>{true});
  EXPECT_FALSE(t_->SetConfig(std::vector<uint8_t>(0x101)).has_value());
  EXPECT_EQ(t_->config().size(), 2u);
}

TEST_F(MmioTransportInterrupt, AckClearsOnlyAcknowledgedBits) {
  t_->RaiseInterrupt(kMmioIntUsedBuffer);  // before DRIVER_OK: dropped (§2.1.2)
  EXPECT_EQ(R32(kMmioRegInterruptStatus), 0u);
  Activate();
  t_->RaiseInterrupt(kMmioIntUsedBuffer | kMmioIntConfigChange | 0x80);
  EXPECT_EQ(R32(kMmioRegInterruptStatus), 3u);
  W32(kMmioRegInterruptAck, kMmioIntUsedBuffer);
  EXPECT_EQ(R32(kMmioRegInterruptStatus), 2u);
  W32(kMmioRegInterruptAck, 0xFFFF'FFFE);  // undefined bits: counted, bit 1 still acked
  EXPECT_EQ(R32(kMmioRegInterruptStatus), 0u);
  EXPECT_EQ(t_->last_driver_error(), MmioDriverError::kBadInterruptAck);
  EXPECT_EQ(delegate_.interrupts, (std::vector<bool>{true, false}));
}

TEST_F(MmioTransportInterrupt, UsedBufferViaIrqfdReadsAsPending) {
  MmioDeviceInfo info = BlkLike();
  info.used_buffer_via_irqfd = true;
  auto t = MmioTransport::Create(std::move(info), delegate_);
  ASSERT_TRUE(t.has_value());
  t_.emplace(std::move(t).value());
  EXPECT_EQ(R32(kMmioRegInterruptStatus), 0u);
  Activate();
  EXPECT_EQ(R32(kMmioRegInterruptStatus), kMmioIntUsedBuffer);
  W32(kMmioRegInterruptAck, kMmioIntUsedBuffer);
  EXPECT_EQ(R32(kMmioRegInterruptStatus), kMmioIntUsedBuffer);
  EXPECT_TRUE(delegate_.interrupts.empty());
}

TEST_F(MmioTransportInterrupt, NeedsResetRaisesConfigChangeOnceActive) {
  UpToFeaturesOk();
  t_->SetNeedsReset();
  EXPECT_EQ(R32(kMmioRegStatus), 0x4Bu);
  EXPECT_TRUE(delegate_.interrupts.empty());
  AddStatus(kVirtioStatusDriverOk);  // refused while the device needs a reset
  EXPECT_EQ(R32(kMmioRegStatus), 0x4Bu);
  EXPECT_EQ(delegate_.activations, 0);
  Activate();  // resets, so the bit is gone
  EXPECT_EQ(R32(kMmioRegStatus), 0x0Fu);
  t_->SetNeedsReset();
  t_->SetNeedsReset();
  EXPECT_EQ(R32(kMmioRegStatus), 0x4Fu);
  EXPECT_EQ(R32(kMmioRegInterruptStatus), kMmioIntConfigChange);
  EXPECT_EQ(delegate_.interrupts, std::vector<bool>{true});
  AddStatus(0);  // writing the read value back, NEEDS_RESET included, is harmless
  EXPECT_EQ(R32(kMmioRegStatus), 0x4Fu);
}

TEST_F(MmioTransportInterrupt, FailedActivationSetsNeedsReset) {
  delegate_.fail_activate = true;
  Activate();
  EXPECT_EQ(delegate_.activations, 1);
  EXPECT_EQ(R32(kMmioRegStatus), 0x4Fu);
  EXPECT_EQ(R32(kMmioRegInterruptStatus), kMmioIntConfigChange);
}

}  // namespace
}  // namespace vmm::virtio
