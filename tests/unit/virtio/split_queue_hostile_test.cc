// Hostile drivers: every malformed chain is a distinct, sticky fault, and a driver racing the
// device (rewriting descriptors, the avail ring or the used ring) cannot steer it.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/unit/virtio/fake_driver.h"
#include "tests/unit/virtio/pop_outcome.h"
#include "vmm/formats/virtio/fake_guest_ram.h"
#include "vmm/formats/virtio/split_queue.h"

namespace vmm::virtio {
namespace {

using testing::FakeDriver;
using testing::PopFault;

constexpr uint64_t kRam = 1 << 20;

class HostileQueue : public ::testing::Test {
 protected:
  HostileQueue() : mem_(kRam), drv_(mem_, 8) {}
  SplitQueue Make(QueueLimits limits = {}, bool indirect = false, bool event_idx = false) {
    auto q = SplitQueue::Create(mem_.ram(), drv_.config(event_idx, indirect), limits);
    if (!q.has_value()) ADD_FAILURE() << q.error().ToString();
    return std::move(q).value();
  }
  // Publishes `head` in the avail ring, makes the queue and pops once: the fault (PopFault).
  QueueFault PublishAndPop(uint16_t head) {
    drv_.Publish(head);
    SplitQueue q = Make();
    return PopFault(q);
  }
  FakeGuestRam mem_;
  FakeDriver drv_;
};

TEST_F(HostileQueue, DescriptorLoopIsChainTooLong) {
  uint64_t buf = drv_.Alloc(8);
  drv_.SetDesc(0, buf, 8, kVirtqDescFNext, 1);
  drv_.SetDesc(1, buf, 8, kVirtqDescFNext, 0);
  EXPECT_EQ(PublishAndPop(0), QueueFault::kChainTooLong);
}

TEST_F(HostileQueue, SelfLoopIsChainTooLong) {
  drv_.SetDesc(3, drv_.Alloc(8), 8, kVirtqDescFNext, 3);
  EXPECT_EQ(PublishAndPop(3), QueueFault::kChainTooLong);
}

TEST_F(HostileQueue, ChainOfExactlyQueueSizeIsAccepted) {
  uint64_t buf = drv_.Alloc(8);
  for (uint16_t i = 0; i < 8; ++i) drv_.SetDesc(i, buf, 8, i < 7 ? kVirtqDescFNext : 0, i + 1);
  drv_.Publish(0);
  SplitQueue q = Make();
  auto ch = q.PopAvail();
  ASSERT_TRUE(ch.has_value() && ch->has_value());
  EXPECT_EQ((*ch)->readable.size(), 8u);
}

TEST_F(HostileQueue, DirectPlusIndirectLongerThanQueueIsChainTooLong) {
  // 3 direct + 6 indirect = 9 buffers in a queue of 8 (§2.7.5.3.1).
  uint64_t buf = drv_.Alloc(8);
  auto [table, len] = drv_.IndirectTable({{buf, 8, true},
                                          {buf, 8, true},
                                          {buf, 8, true},
                                          {buf, 8, true},
                                          {buf, 8, true},
                                          {buf, 8, true}});
  drv_.SetDesc(0, buf, 8, kVirtqDescFNext, 1);
  drv_.SetDesc(1, buf, 8, kVirtqDescFNext, 2);
  drv_.SetDesc(2, buf, 8, kVirtqDescFNext, 3);
  drv_.SetDesc(3, table, len, kVirtqDescFIndirect, 0);
  drv_.Publish(0);
  SplitQueue q = Make({}, /*indirect=*/true);
  EXPECT_EQ(PopFault(q), QueueFault::kChainTooLong);
}

TEST_F(HostileQueue, HeadIndexOutOfRange) {
  EXPECT_EQ(PublishAndPop(8), QueueFault::kDescIndexOutOfRange);
}

TEST_F(HostileQueue, NextIndexOutOfRange) {
  drv_.SetDesc(0, drv_.Alloc(8), 8, kVirtqDescFNext, 0xFFFF);
  EXPECT_EQ(PublishAndPop(0), QueueFault::kDescIndexOutOfRange);
}

TEST_F(HostileQueue, BufferOutsideRam) {
  drv_.SetDesc(0, kRam - 4, 8, 0, 0);
  EXPECT_EQ(PublishAndPop(0), QueueFault::kBufferOutsideRam);
}

TEST_F(HostileQueue, BufferAddressThatWrapsIsOutsideRam) {
  drv_.SetDesc(0, UINT64_MAX - 3, 0x100, 0, 0);
  EXPECT_EQ(PublishAndPop(0), QueueFault::kBufferOutsideRam);
}

TEST(HostileQueueRegions, BufferStraddlingTwoRegionsIsOutsideRam) {
  FakeGuestRam mem({{0, 0x80000}, {0x80000, 0x80000}});
  FakeDriver drv(mem, 8);
  drv.SetDesc(0, 0x7FF00, 0x200, 0, 0);
  drv.Publish(0);
  auto q = SplitQueue::Create(mem.ram(), drv.config());
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(PopFault(*q), QueueFault::kBufferOutsideRam);
}

TEST_F(HostileQueue, ZeroLengthBuffer) {
  drv_.SetDesc(0, drv_.Alloc(8), 0, 0, 0);
  EXPECT_EQ(PublishAndPop(0), QueueFault::kZeroLengthBuffer);
}

TEST_F(HostileQueue, HugeBufferIsChainTooLarge) {
  drv_.SetDesc(0, 0, 0xFFFFFFFF, 0, 0);
  EXPECT_EQ(PublishAndPop(0), QueueFault::kChainTooLarge);
}

TEST_F(HostileQueue, ChainSummingPastTheCapIsChainTooLarge) {
  // Each buffer is inside RAM and under the cap; together they are not.
  drv_.SetDesc(0, 0, 0x60000, kVirtqDescFNext, 1);
  drv_.SetDesc(1, 0, 0x60000, 0, 0);
  drv_.Publish(0);
  SplitQueue q = Make({.max_chain_bytes = 0x80000});
  EXPECT_EQ(PopFault(q), QueueFault::kChainTooLarge);
}

TEST_F(HostileQueue, ReadableAfterWritableIsRefused) {
  uint64_t buf = drv_.Alloc(8);
  EXPECT_EQ(PublishAndPop(drv_.AddChain({{buf, 8, true}, {buf, 8, false}})),
            QueueFault::kReadableAfterWritable);
}

TEST_F(HostileQueue, ReadableAfterWritableAllowedWhenTheDeviceSaysSo) {
  uint64_t buf = drv_.Alloc(8);
  drv_.Publish(drv_.AddChain({{buf, 8, true}, {buf, 4, false}}));
  SplitQueue q = Make({.readable_before_writable = false});
  auto ch = q.PopAvail();
  ASSERT_TRUE(ch.has_value() && ch->has_value());
  EXPECT_EQ((*ch)->readable_len, 4u);
}

TEST_F(HostileQueue, AvailIndexJumpingPastQueueSize) {
  drv_.SetAvailIdx(9);  // 9 new entries in a queue of 8
  SplitQueue q = Make();
  EXPECT_EQ(PopFault(q), QueueFault::kAvailIndexJump);
}

TEST_F(HostileQueue, AvailIndexGoingBackwards) {
  drv_.SetDesc(0, drv_.Alloc(8), 8, 0, 0);
  drv_.Publish(0);
  SplitQueue q = Make();
  ASSERT_TRUE(q.PopAvail().has_value());
  drv_.SetAvailIdx(0);  // "un-publishes": idx - next_avail wraps to 65535
  EXPECT_EQ(PopFault(q), QueueFault::kAvailIndexJump);
}

TEST_F(HostileQueue, MoreOutstandingThanQueueSizeWhileBuffersAreInFlight) {
  // The driver re-publishes heads the device still holds: in flight + pending > size.
  drv_.SetDesc(0, drv_.Alloc(8), 8, 0, 0);
  for (int i = 0; i < 8; ++i) drv_.Publish(0);
  SplitQueue q = Make();
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(q.PopAvail().has_value()) << i;
  EXPECT_EQ(q.in_flight(), 8u);
  drv_.Publish(0);
  EXPECT_EQ(PopFault(q), QueueFault::kAvailIndexJump);
}

TEST_F(HostileQueue, FaultIsStickyAndConsumesNothing) {
  drv_.Publish(200);
  SplitQueue q = Make();
  EXPECT_EQ(PopFault(q), QueueFault::kDescIndexOutOfRange);
  drv_.SetDesc(0, drv_.Alloc(8), 8, 0, 0);
  drv_.SetAvailSlot(0, 0);  // "fixed" by the driver: too late, the device needs a reset
  EXPECT_EQ(PopFault(q), QueueFault::kDescIndexOutOfRange);
  EXPECT_TRUE(q.broken());
  EXPECT_EQ(q.next_avail(), 0);
  EXPECT_FALSE(q.PushUsed(0, 0).has_value());
  EXPECT_EQ(drv_.used_idx(), 0);
}

// --- The driver rewrites shared memory while the device holds a chain ------------------

TEST_F(HostileQueue, RewritingDescriptorsAfterPopDoesNotChangeTheChain) {
  uint64_t a = drv_.Alloc(16), b = drv_.Alloc(64);
  uint16_t head = drv_.AddChain({{a, 16, false}, {b, 64, true}});
  drv_.Publish(head);
  SplitQueue q = Make();
  auto ch = q.PopAvail();
  ASSERT_TRUE(ch.has_value() && ch->has_value());
  // The driver now points both descriptors at something else, huge and outside RAM.
  drv_.SetDesc(0, kRam - 8, 0xFFFFFFFF, kVirtqDescFNext | kVirtqDescFWrite, 1);
  drv_.SetDesc(1, 0xDEAD0000, 0xFFFFFFFF, 0, 0);
  const DescriptorChain& c = **ch;
  EXPECT_EQ(c.readable[0].gpa, a);
  EXPECT_EQ(c.readable[0].bytes.size(), 16u);
  EXPECT_EQ(c.writable[0].bytes.data(), mem_.At(b, 64).data());
  EXPECT_EQ(c.writable_len, 64u);
}

TEST_F(HostileQueue, RewritingTheAvailSlotAfterPopDoesNotChangeTheHead) {
  drv_.SetDesc(5, drv_.Alloc(8), 8, kVirtqDescFWrite, 0);
  drv_.Publish(5);
  SplitQueue q = Make();
  auto ch = q.PopAvail();
  ASSERT_TRUE(ch.has_value() && ch->has_value());
  drv_.SetAvailSlot(0, 7);
  ASSERT_TRUE(q.PushUsed((*ch)->head, 8).has_value());
  EXPECT_EQ(drv_.UsedElem(0).first, 5u);
}

TEST_F(HostileQueue, DriverWritesToTheUsedRingDoNotSteerTheDevice) {
  uint64_t buf = drv_.Alloc(8);
  drv_.SetDesc(0, buf, 8, kVirtqDescFWrite, 0);
  SplitQueue q = Make();
  drv_.Publish(0);
  ASSERT_TRUE(q.PopAvail().has_value());
  ASSERT_TRUE(q.PushUsed(0, 8).has_value());
  // The driver scribbles over the used ring the device owns.
  drv_.SetUsedIdx(0x1234);
  mem_.Put<uint64_t>(drv_.used_gpa() + 4, ~0ull);
  drv_.Publish(0);
  ASSERT_TRUE(q.PopAvail().has_value());
  ASSERT_TRUE(q.PushUsed(0, 4).has_value());
  // The second element went to slot 1 and idx is the device's count, not 0x1234 + 1.
  EXPECT_EQ(drv_.used_idx(), 2);
  EXPECT_EQ(drv_.UsedElem(1), std::make_pair(0u, 4u));
  EXPECT_EQ(q.used_idx(), 2);
}

TEST(HostileQueueRace, DescriptorRewrittenConcurrentlyNeverYieldsABufferOutsideRam) {
  // A second thread (another vCPU) flips a descriptor's addr between a buffer inside RAM
  // and one that crosses its end, as fast as it can, while the device pops. Whatever the
  // interleaving, the device must return a buffer that is exactly what it validated, or
  // fault; a device that re-read addr after checking it would now and then hand out the
  // crossing buffer. Both sides use atomic accesses, so this is race-free for TSan too.
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 2);
  const uint64_t good = drv.Alloc(4096);
  const uint64_t bad = kRam - 64;
  drv.SetDesc(0, good, 4096, kVirtqDescFWrite, 0);
  uint8_t* addr_field = mem.At(drv.desc_gpa(), 8).data();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> flips{0};
  std::thread racer([&] {
    for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      StoreShared<uint64_t>(addr_field, (i & 1) ? bad : good);
      flips.store(i, std::memory_order_relaxed);
    }
  });
  while (flips.load() < 1000) std::this_thread::yield();
  // Until both outcomes were seen (bounded): on a busy host the racer may get few slices.
  int served = 0, faulted = 0, i = 0;
  for (; i < 500000 && (i < 20000 || served == 0 || faulted == 0); ++i) {
    QueueConfig c = drv.config();
    c.avail_base = drv.avail_idx();
    drv.Publish(0);
    auto q = SplitQueue::Create(mem.ram(), c);
    ASSERT_TRUE(q.has_value());
    auto ch = q->PopAvail();
    if (!ch.has_value()) {
      EXPECT_EQ(q->fault(), QueueFault::kBufferOutsideRam);
      ++faulted;
      continue;
    }
    ASSERT_TRUE(ch->has_value());
    const GuestBuffer& b = (*ch)->writable.at(0);
    ASSERT_EQ(b.gpa, good);
    ASSERT_EQ(b.bytes.data(), mem.At(good, 4096).data());
    ASSERT_EQ(b.bytes.size(), 4096u);
    ++served;
  }
  stop = true;
  racer.join();
  EXPECT_EQ(served + faulted, i);
  RecordProperty("served", served);
  RecordProperty("faulted", faulted);
}

}  // namespace
}  // namespace vmm::virtio
