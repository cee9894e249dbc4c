#include "vmm/device/rng/rng.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/virtio/fake_driver.h"
#include "vmm/device/rng/fake_entropy_source.h"
#include "vmm/formats/virtio/fake_guest_ram.h"

namespace vmm::virtio {
namespace {

using testing::FakeDriver;

class Rng : public ::testing::Test {
 protected:
  Rng() : mem_(1 << 20), drv_(mem_, 8) {}
  Result<QueueRun> Serve(RngDevice& rng) {
    if (!queue_) {
      auto q = SplitQueue::Create(mem_.ram(), drv_.config(), rng.queue_limits());
      if (!q.has_value()) return q.error();
      queue_.emplace(std::move(q).value());
    }
    return rng.ProcessQueue(*queue_);
  }
  uint64_t Buffer(uint32_t len) {
    uint64_t b = drv_.Alloc(len);
    std::fill_n(mem_.At(b, len).begin(), len, 0);
    return b;
  }
  FakeGuestRam mem_;
  FakeDriver drv_;
  FakeEntropySource entropy_;
  std::optional<SplitQueue> queue_;
};

TEST_F(Rng, OffersVersion1AndNoDeviceFeatures) {
  RngDevice rng(entropy_);
  EXPECT_TRUE(rng.features() & kVirtioFVersion1);
  EXPECT_EQ(rng.features() & 0xFFFFFF, 0u);  // §5.4.3: none defined
}

TEST_F(Rng, FillsEveryWritableBufferInOrder) {
  RngDevice rng(entropy_);
  uint64_t a = Buffer(3), b = Buffer(5);
  drv_.Publish(drv_.AddChain({{a, 3, true}, {b, 5, true}}));
  auto run = Serve(rng);
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->chains, 1u);
  EXPECT_TRUE(run->notify);
  EXPECT_EQ(mem_.Read(a, 3), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(mem_.Read(b, 5), (std::vector<uint8_t>{4, 5, 6, 7, 8}));
  EXPECT_EQ(drv_.UsedElem(0).second, 8u);
}

TEST_F(Rng, StopsAtThePerRequestCap) {
  RngDevice rng(entropy_, /*max_bytes_per_request=*/6);
  uint64_t a = Buffer(4), b = Buffer(4);
  drv_.Publish(drv_.AddChain({{a, 4, true}, {b, 4, true}}));
  ASSERT_TRUE(Serve(rng).has_value());
  EXPECT_EQ(drv_.UsedElem(0).second, 6u);  // §5.4.6.2: may use less than the whole buffer
  EXPECT_EQ(mem_.Read(b, 4), (std::vector<uint8_t>{5, 6, 0, 0}));
  EXPECT_EQ(entropy_.bytes, 6u);
}

TEST_F(Rng, ReadableBuffersAreNeverWritten) {
  RngDevice rng(entropy_);
  uint64_t r = Buffer(16), w = Buffer(4);
  drv_.Publish(drv_.AddChain({{r, 16, false}, {w, 4, true}}));
  ASSERT_TRUE(Serve(rng).has_value());
  EXPECT_EQ(mem_.Read(r, 16), std::vector<uint8_t>(16, 0));
  EXPECT_EQ(drv_.UsedElem(0).second, 4u);
}

TEST_F(Rng, RequestWithNoWritableBufferCompletesEmpty) {
  RngDevice rng(entropy_);
  drv_.Publish(drv_.AddChain({{Buffer(16), 16, false}}));
  ASSERT_TRUE(Serve(rng).has_value());
  EXPECT_EQ(drv_.UsedElem(0).second, 0u);
  EXPECT_EQ(entropy_.calls, 0u);
}

TEST_F(Rng, EntropyFailureIsAnErrorAndNothingIsCompleted) {
  RngDevice rng(entropy_);
  entropy_.fail = true;
  drv_.Publish(drv_.AddChain({{Buffer(8), 8, true}}));
  auto run = Serve(rng);
  ASSERT_FALSE(run.has_value());
  EXPECT_EQ(run.error().kind(), ErrorKind::kSystem);
  EXPECT_EQ(drv_.used_idx(), 0);
}

TEST_F(Rng, MalformedChainIsAQueueFault) {
  RngDevice rng(entropy_);
  drv_.SetDesc(0, Buffer(8), 8, kVirtqDescFWrite | kVirtqDescFNext, 0);  // loop
  drv_.Publish(0);
  auto run = Serve(rng);
  ASSERT_FALSE(run.has_value());
  EXPECT_EQ(queue_->fault(), QueueFault::kChainTooLong);
  EXPECT_EQ(entropy_.calls, 0u);
}

TEST(GetrandomEntropySource, FillsTheWholeBuffer) {
  GetrandomEntropySource source;
  std::vector<uint8_t> buf(100000, 0);  // larger than one getrandom call may return
  ASSERT_TRUE(source.Fill(buf).has_value());
  // 100000 zero bytes from a CSPRNG: probability 2^-800000.
  EXPECT_NE(std::count(buf.begin(), buf.end(), 0), static_cast<long>(buf.size()));
  EXPECT_NE(std::count(buf.end() - 64, buf.end(), 0), 64);
}

}  // namespace
}  // namespace vmm::virtio
