// virtio-blk with a well-behaved driver: features, config space, each request type, flush.
#include "vmm/device/blk/blk.h"

#include <gtest/gtest.h>

#include "tests/unit/virtio/blk_fixture.h"
#include "vmm/formats/virtio/features.h"

namespace vmm::virtio {
namespace {

using testing::BlkFixture;
using Kind = FakeBlockBackend::Kind;

TEST(BlkDeviceSetup, OffersTheAdvertisedFeatures) {
  FakeBlockBackend disk(4096);
  auto blk = BlkDevice::Create(disk);
  ASSERT_TRUE(blk.has_value());
  const uint64_t want = kVirtioFVersion1 | kVirtioBlkFFlush | kVirtioBlkFSegMax |
                        kVirtioBlkFSizeMax | kVirtioBlkFBlkSize | kVirtioRingFEventIdx |
                        kVirtioRingFIndirectDesc;
  EXPECT_EQ(blk->features(), want);
}

TEST(BlkDeviceSetup, ReadOnlyImageOffersRo) {
  FakeBlockBackend disk(4096, /*read_only=*/true);
  auto blk = BlkDevice::Create(disk);
  ASSERT_TRUE(blk.has_value());
  EXPECT_TRUE(blk->features() & kVirtioBlkFRo);
}

TEST(BlkDeviceSetup, RejectsBadOptions) {
  FakeBlockBackend disk(4096);
  EXPECT_FALSE(BlkDevice::Create(disk, {.seg_max = 0}).has_value());
  EXPECT_FALSE(BlkDevice::Create(disk, {.seg_max = 40000}).has_value());
  EXPECT_FALSE(BlkDevice::Create(disk, {.size_max = 100}).has_value());
  EXPECT_FALSE(BlkDevice::Create(disk, {.blk_size = 1000}).has_value());
  EXPECT_FALSE(BlkDevice::Create(disk, {.blk_size = 256}).has_value());
}

TEST(BlkDeviceSetup, ConfigReportsCapacityInWholeSectorsAndLimits) {
  FakeBlockBackend disk(64 * 1024 + 100);  // the partial sector at the end is not exposed
  auto blk = BlkDevice::Create(disk, {.seg_max = 30, .size_max = 8192, .blk_size = 4096});
  ASSERT_TRUE(blk.has_value());
  uint8_t b8[8];
  ASSERT_TRUE(blk->ReadConfig(kBlkConfigCapacity, b8).has_value());
  EXPECT_EQ(LoadLe<uint64_t>(b8, 0), 128u);
  EXPECT_EQ(LoadLe<uint32_t>(blk->config(), kBlkConfigSegMax), 30u);
  EXPECT_EQ(LoadLe<uint32_t>(blk->config(), kBlkConfigSizeMax), 8192u);
  EXPECT_EQ(LoadLe<uint32_t>(blk->config(), kBlkConfigBlkSize), 4096u);
  EXPECT_EQ(blk->config()[32], 0);  // writeback: no CONFIG_WCE
  EXPECT_EQ(blk->queue_limits().max_chain_bytes, 30u * 8192 + 4096);
}

TEST(BlkDeviceSetup, ConfigReadsAreBoundsCheckedAtAnyOffsetAndWidth) {
  FakeBlockBackend disk(64 * 1024);
  auto blk = BlkDevice::Create(disk);
  ASSERT_TRUE(blk.has_value());
  uint8_t buf[8] = {};
  EXPECT_TRUE(blk->ReadConfig(kBlkConfigSize - 1, std::span(buf, 1)).has_value());
  EXPECT_TRUE(blk->ReadConfig(1, std::span(buf, 2)).has_value());  // mid-field
  EXPECT_EQ(buf[0], 0);  // capacity 128 = 0x80 at byte 0; byte 1 is 0
  EXPECT_FALSE(blk->ReadConfig(kBlkConfigSize - 2, std::span(buf, 4)).has_value());
  EXPECT_FALSE(blk->ReadConfig(kBlkConfigSize, std::span(buf, 1)).has_value());
  EXPECT_FALSE(blk->ReadConfig(UINT64_MAX, std::span(buf, 1)).has_value());
  EXPECT_FALSE(blk->ReadConfig(UINT64_MAX - 3, std::span(buf, 8)).has_value());
  EXPECT_FALSE(blk->ReadConfig(0, std::span(buf, 0)).has_value());
}

class Blk : public BlkFixture {};

TEST_F(Blk, ReadCopiesSectorsIntoGuestBuffers) {
  Device();
  uint64_t h = PutHeader(kVirtioBlkTIn, 3), d1 = PutData(512, 0), d2 = PutData(1024, 0);
  uint64_t s = PutStatus();
  drv_.Publish(drv_.AddChain({{h, 16, false}, {d1, 512, true}, {d2, 1024, true}, {s, 1, true}}));
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  EXPECT_EQ(mem_.Read(d1, 512),
            std::vector<uint8_t>(disk_.image.begin() + 1536, disk_.image.begin() + 2048));
  EXPECT_EQ(mem_.Read(d2, 1024),
            std::vector<uint8_t>(disk_.image.begin() + 2048, disk_.image.begin() + 3072));
  EXPECT_EQ(drv_.used_idx(), 1);
  EXPECT_EQ(drv_.UsedElem(0).second, 512u + 1024 + 1);
}

TEST_F(Blk, WriteStoresGuestData) {
  Device();
  uint64_t d = PutData(1024, 0xAB);
  uint64_t s = Submit(kVirtioBlkTOut, 10, d, 1024, false);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(disk_.image[5120 + i], 0xAB) << i;
  EXPECT_EQ(disk_.image[5119], static_cast<uint8_t>(5119 * 7));
  EXPECT_EQ(disk_.image[6144], static_cast<uint8_t>(6144 * 7));
  EXPECT_EQ(drv_.UsedElem(0).second, 1u);
}

TEST_F(Blk, HeaderAndDataMayShareOrSplitDescriptors) {
  // §2.7.4: no assumption about framing. Header split 10 + 6, the last 6 bytes of the header
  // sharing a descriptor with the data, and the status sharing one with read data.
  Device();
  std::vector<uint8_t> req(16 + 512, 0x5A);
  auto hdr = testing::BlkHeader(kVirtioBlkTOut, 2);
  std::copy(hdr.begin(), hdr.end(), req.begin());
  uint64_t r = drv_.AllocBytes(req), s = PutStatus();
  drv_.Publish(drv_.AddChain({{r, 10, false}, {r + 10, 16 + 512 - 10, false}, {s, 1, true}}));
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  EXPECT_EQ(disk_.image[1024], 0x5A);
  EXPECT_EQ(disk_.image[1535], 0x5A);

  uint64_t h = PutHeader(kVirtioBlkTIn, 2), ds = PutData(513, 0);
  drv_.Publish(drv_.AddChain({{h, 16, false}, {ds, 513, true}}));
  EXPECT_EQ(ServeStatus(ds + 512), kVirtioBlkSOk);
  EXPECT_EQ(mem_.Get<uint8_t>(ds + 511), 0x5A);
}

TEST_F(Blk, FlushCompletesOnlyAfterTheBackendFlushReturned) {
  Device();
  uint64_t s = Submit(kVirtioBlkTFlush, 0, 0, 0, false);
  bool checked = false;
  disk_.on_op = [&](const FakeBlockBackend::Op& op) {
    if (op.kind != Kind::kFlush) return;
    // Inside fdatasync: nothing is reported to the driver yet.
    EXPECT_EQ(mem_.Get<uint8_t>(s), kStatusUnset);
    EXPECT_EQ(drv_.used_idx(), 0);
    checked = true;
  };
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  EXPECT_TRUE(checked);
  EXPECT_EQ(drv_.used_idx(), 1);
}

TEST_F(Blk, WriteThenFlushReachTheBackendInOrder) {
  Device();
  uint64_t d = PutData(512, 1);
  uint64_t s1 = Submit(kVirtioBlkTOut, 0, d, 512, false);
  uint64_t s2 = Submit(kVirtioBlkTFlush, 0, 0, 0, false);
  auto run = Serve();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->chains, 2u);
  EXPECT_EQ(mem_.Get<uint8_t>(s1), kVirtioBlkSOk);
  EXPECT_EQ(mem_.Get<uint8_t>(s2), kVirtioBlkSOk);
  ASSERT_EQ(disk_.ops.size(), 2u);
  EXPECT_EQ(disk_.ops[0].kind, Kind::kWrite);
  EXPECT_EQ(disk_.ops[1].kind, Kind::kFlush);
}

TEST_F(Blk, WritesAreMadeStableBeforeCompletionWhenFlushIsNotNegotiated) {
  // §5.2.6.2: FLUSH offered but not negotiated means write-through.
  Device().SetDriverFeatures(kVirtioFVersion1);
  uint64_t s = Submit(kVirtioBlkTOut, 0, PutData(512, 1), 512, false);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  ASSERT_EQ(disk_.ops.size(), 2u);
  EXPECT_EQ(disk_.ops[1].kind, Kind::kFlush);
}

TEST_F(Blk, GetIdReturnsTheNulPaddedSerial) {
  Device({.serial = "vmm-disk-0"});
  uint64_t d = PutData(20, 0xFF);
  uint64_t s = Submit(kVirtioBlkTGetId, 0, d, 20, true);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  std::vector<uint8_t> want(20, 0);
  std::memcpy(want.data(), "vmm-disk-0", 10);
  EXPECT_EQ(mem_.Read(d, 20), want);
  EXPECT_EQ(drv_.UsedElem(0).second, 21u);
}

TEST_F(Blk, GetIdOfTwentyBytesHasNoTerminatorAndLongerSerialsAreCut) {
  Device({.serial = "0123456789abcdefghijKLMN"});
  uint64_t d = PutData(24, 0xFF);
  uint64_t s = Submit(kVirtioBlkTGetId, 0, d, 24, true);
  EXPECT_EQ(ServeStatus(s), kVirtioBlkSOk);
  auto got = mem_.Read(d, 24);
  EXPECT_EQ(std::string(got.begin(), got.begin() + 20), "0123456789abcdefghij");
  EXPECT_EQ(got[20], 0xFF);  // nothing past 20 bytes
}

TEST_F(Blk, UnknownAndUnofferedTypesAreUnsupported) {
  Device();
  const auto before = disk_.image;
  for (uint32_t type : {2u, 10u, 11u, 13u, 14u, 0xFFFFFFFFu}) {
    uint64_t s = Submit(type, 0, PutData(512, 0), 512, false);
    EXPECT_EQ(ServeStatus(s), kVirtioBlkSUnsupp) << type;
  }
  EXPECT_TRUE(disk_.ops.empty());
  EXPECT_EQ(disk_.image, before);
}

TEST_F(Blk, ProcessQueueServesAtMostQueueSizeChainsPerCall) {
  Device();
  for (int i = 0; i < 16; ++i) Submit(kVirtioBlkTFlush, 0, 0, 0, false);
  auto run = Serve();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->chains, 16u);
  EXPECT_TRUE(run->more);
  EXPECT_TRUE(run->notify);
  run = Serve();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->chains, 0u);
  EXPECT_FALSE(run->more);
}

}  // namespace
}  // namespace vmm::virtio
