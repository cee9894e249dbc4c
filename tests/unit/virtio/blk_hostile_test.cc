// virtio-blk with a hostile driver: requests outside the image, overflowing sector numbers,
// wrong directions, missing status, read-only images, and a driver rewriting the request
// while the device serves it.
#include <gtest/gtest.h>

#include "tests/unit/virtio/blk_fixture.h"
#include "vmm/device/blk/blk.h"

namespace vmm::virtio {
namespace {

using testing::BlkFixture;
using Kind = FakeBlockBackend::Kind;

class BlkHostile : public BlkFixture {};

TEST_F(BlkHostile, ReadPastTheEndOfTheImageIsIoErrAndReadsNothing) {
  Device();
  uint64_t d = PutData(1024, 0x11);
  uint64_t s = Submit(kVirtioBlkTIn, 127, d, 1024, true);  // last sector + one more
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_EQ(CountOps(Kind::kRead), 0u);
  EXPECT_EQ(mem_.Get<uint8_t>(d), 0x11);
}

TEST_F(BlkHostile, WritePastTheEndOfTheImageWritesNothing) {
  Device();
  const auto before = disk_.image;
  uint64_t s = Submit(kVirtioBlkTOut, 120, PutData(8 * 512 + 512, 0x22), 8 * 512 + 512, false);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_EQ(CountOps(Kind::kWrite), 0u);
  EXPECT_EQ(disk_.image, before);
  EXPECT_EQ(disk_.violations, 0u);
}

TEST_F(BlkHostile, RequestEndingExactlyAtTheEndIsServed) {
  Device();
  uint64_t s = Submit(kVirtioBlkTOut, 127, PutData(512, 0x33), 512, false);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  EXPECT_EQ(disk_.image.back(), 0x33);
}

TEST_F(BlkHostile, SectorArithmeticOverflowIsIoErrAndWritesNothing) {
  Device();
  const auto before = disk_.image;
  // UINT64_MAX / 512 + 1 sectors is 2^55: sector * 512 would wrap to 0 in 64 bits.
  for (uint64_t sector : {UINT64_MAX, UINT64_MAX / 512 + 1, (UINT64_MAX / 512 + 1) * 2,
                          uint64_t{129}, uint64_t{128}}) {
    uint64_t s = Submit(kVirtioBlkTOut, sector, PutData(512, 0x44), 512, false);
    EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr) << sector;
  }
  EXPECT_TRUE(disk_.ops.empty());
  EXPECT_EQ(disk_.image, before);
}

TEST_F(BlkHostile, PartialSectorIsIoErr) {
  Device();
  uint64_t s = Submit(kVirtioBlkTOut, 0, PutData(513, 0x55), 513, false);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  s = Submit(kVirtioBlkTIn, 0, PutData(100, 0), 100, true);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_TRUE(disk_.ops.empty());
}

TEST_F(BlkHostile, RequestLargerThanAdvertisedIsIoErr) {
  // Advertised: one segment of 4 KiB. 4.5 KiB still fits the queue's chain cap (the cap has
  // slack for header and status), so this reaches the device, which refuses it.
  Device({.seg_max = 1, .size_max = 4096});
  uint64_t s = Submit(kVirtioBlkTIn, 0, PutData(4608, 0), 4608, true);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_TRUE(disk_.ops.empty());
  // Past the cap the chain never reaches the device: the queue faults (DEVICE_NEEDS_RESET).
  Submit(kVirtioBlkTIn, 0, PutData(8192, 0), 8192, true);
  ASSERT_FALSE(Serve().has_value());
  EXPECT_EQ(queue_->fault(), QueueFault::kChainTooLarge);
}

TEST_F(BlkHostile, StatusInAReadableBufferIsAnErrorForTheCaller) {
  Device();
  uint64_t h = PutHeader(kVirtioBlkTIn, 0), d = PutData(512, 0), s = PutStatus();
  drv_.Publish(drv_.AddChain({{h, 16, false}, {d, 512, false}, {s, 1, false}}));
  auto run = Serve();
  ASSERT_FALSE(run.has_value());  // nowhere to report: the device needs a reset
  EXPECT_EQ(run.error().kind(), ErrorKind::kGuest);
  EXPECT_EQ(mem_.Get<uint8_t>(s), kStatusUnset);  // a readable buffer is never written
  EXPECT_TRUE(disk_.ops.empty());
  EXPECT_EQ(drv_.used_idx(), 0);
}

TEST_F(BlkHostile, ReadWithItsDataBufferReadableIsIoErr) {
  Device();
  uint64_t d = PutData(512, 0x66);
  uint64_t s = Submit(kVirtioBlkTIn, 0, d, 512, /*data_writable=*/false);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_EQ(mem_.Get<uint8_t>(d), 0x66);  // the device did not write a readable buffer
  EXPECT_TRUE(disk_.ops.empty());
}

TEST_F(BlkHostile, WriteWithItsDataBufferWritableIsIoErrAndWritesNothing) {
  Device();
  const auto before = disk_.image;
  uint64_t s = Submit(kVirtioBlkTOut, 0, PutData(512, 0x77), 512, /*data_writable=*/true);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_TRUE(disk_.ops.empty());
  EXPECT_EQ(disk_.image, before);
}

TEST_F(BlkHostile, HeaderShorterThanSixteenBytesIsIoErr) {
  Device();
  uint64_t h = PutHeader(kVirtioBlkTOut, 0), s = PutStatus();
  drv_.Publish(drv_.AddChain({{h, 8, false}, {s, 1, true}}));
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_TRUE(disk_.ops.empty());
}

TEST_F(BlkHostile, BackendFailuresAreIoErr) {
  Device();
  disk_.fail_reads = disk_.fail_writes = disk_.fail_flush = true;
  uint64_t s1 = Submit(kVirtioBlkTIn, 0, PutData(512, 0), 512, true);
  uint64_t s2 = Submit(kVirtioBlkTOut, 0, PutData(512, 0), 512, false);
  uint64_t s3 = Submit(kVirtioBlkTFlush, 0, 0, 0, false);
  ASSERT_TRUE(Serve().has_value());
  EXPECT_EQ(mem_.Get<uint8_t>(s1), kVirtioBlkSIoErr);
  EXPECT_EQ(mem_.Get<uint8_t>(s2), kVirtioBlkSIoErr);
  EXPECT_EQ(mem_.Get<uint8_t>(s3), kVirtioBlkSIoErr);
}

class BlkReadOnly : public BlkFixture {
 protected:
  BlkReadOnly() : BlkFixture(/*read_only=*/true) {}
};

TEST_F(BlkReadOnly, WritesAreIoErrAndNothingIsWritten) {
  Device();
  const auto before = disk_.image;
  uint64_t s = Submit(kVirtioBlkTOut, 0, PutData(512, 0x88), 512, false);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSIoErr);
  EXPECT_EQ(CountOps(Kind::kWrite), 0u);
  EXPECT_EQ(disk_.violations, 0u);
  EXPECT_EQ(disk_.image, before);
}

TEST_F(BlkReadOnly, ReadsStillWork) {
  Device();
  uint64_t d = PutData(512, 0);
  EXPECT_EQ(ServeStatus(Submit(kVirtioBlkTIn, 1, d, 512, true)), kVirtioBlkSOk);
  EXPECT_EQ(mem_.Get<uint8_t>(d + 1), static_cast<uint8_t>(513 * 7));
}

TEST_F(BlkHostile, DriverRewritingTheRequestMidwayDoesNotRedirectIt) {
  // A two-segment write. While the device is inside the first backend write, the driver
  // rewrites everything it can reach: the header (type and sector), the descriptors (to
  // point past RAM, with huge lengths, flipped directions) and the status descriptor. The
  // device must finish the request exactly as it validated it.
  Device();
  uint64_t h = PutHeader(kVirtioBlkTOut, 4), d1 = PutData(512, 0xA1), d2 = PutData(512, 0xA2);
  uint64_t s = PutStatus();
  uint16_t head = drv_.AddChain({{h, 16, false}, {d1, 512, false}, {d2, 512, false}, {s, 1, true}});
  drv_.Publish(head);
  int writes = 0;
  disk_.on_op = [&](const FakeBlockBackend::Op& op) {
    if (op.kind != Kind::kWrite || writes++ != 0) return;
    mem_.Write(h, testing::BlkHeader(kVirtioBlkTIn, UINT64_MAX / 512));
    for (uint16_t i = 0; i < 4; ++i) {
      drv_.SetDesc(static_cast<uint16_t>(head + i), (1 << 20) - 1, 0xFFFFFFFF,
                   kVirtqDescFWrite | kVirtqDescFNext, static_cast<uint16_t>(head + i));
    }
  };
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  ASSERT_EQ(disk_.ops.size(), 2u);
  EXPECT_EQ(disk_.ops[0].offset, 4u * 512);
  EXPECT_EQ(disk_.ops[1].offset, 5u * 512);  // second segment where it was validated to go
  EXPECT_EQ(disk_.ops[1].len, 512u);
  EXPECT_EQ(disk_.image[4 * 512], 0xA1);
  EXPECT_EQ(disk_.image[5 * 512 + 511], 0xA2);
  EXPECT_EQ(drv_.UsedElem(0), std::make_pair(uint32_t{head}, 1u));
  EXPECT_EQ(disk_.violations, 0u);
}

}  // namespace
}  // namespace vmm::virtio
