// Well-behaved drivers: queue setup, chain walking, used ring and notification suppression.
#include "vmm/formats/virtio/split_queue.h"

#include <gtest/gtest.h>

#include "tests/unit/virtio/fake_driver.h"
#include "tests/unit/virtio/pop_outcome.h"
#include "vmm/formats/virtio/fake_guest_ram.h"

namespace vmm::virtio {
namespace {

using testing::ExpectNothingAvailable;
using testing::FakeDriver;

constexpr uint64_t kRam = 1 << 20;

TEST(SplitQueueSetup, RejectsQueueSizeZero) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 16);
  QueueConfig c = drv.config();
  c.size = 0;
  auto q = SplitQueue::Create(mem.ram(), c);
  ASSERT_FALSE(q.has_value());
  EXPECT_EQ(q.error().kind(), ErrorKind::kGuest);
}

TEST(SplitQueueSetup, RejectsQueueSizeNotAPowerOfTwo) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 16);
  for (uint32_t size : {3u, 12u, 255u, 32767u}) {
    QueueConfig c = drv.config();
    c.size = size;
    EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value()) << size;
  }
}

TEST(SplitQueueSetup, RejectsQueueSizeAbove32768) {
  FakeGuestRam mem(4 << 20);
  FakeDriver drv(mem, 16);
  QueueConfig c = drv.config();
  c.size = 65536;
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
  c.size = 1u << 31;
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
}

TEST(SplitQueueSetup, AcceptsSizesFromOneTo32768) {
  FakeGuestRam mem(4 << 20);
  for (uint32_t size = 1; size <= kMaxQueueSize; size *= 2) {
    FakeDriver drv(mem, static_cast<uint16_t>(size));
    QueueConfig c = drv.config();
    c.size = size;
    auto q = SplitQueue::Create(mem.ram(), c);
    ASSERT_TRUE(q.has_value()) << size << ": " << q.error().ToString();
    EXPECT_EQ(q->size(), size);
  }
}

TEST(SplitQueueSetup, RejectsMisalignedRings) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 16);
  QueueConfig c = drv.config();
  c.desc_gpa += 8;
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
  c = drv.config();
  c.avail_gpa += 1;
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
  c = drv.config();
  c.used_gpa += 2;
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
}

TEST(SplitQueueSetup, RejectsRingsOutsideRam) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 16);
  QueueConfig c = drv.config();
  c.used_gpa = kRam - 16;  // used ring needs 6 + 8 * 16 bytes
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
  c = drv.config();
  c.desc_gpa = 0xFFFFFFFFFFFFFFF0ull;
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
  c = drv.config();
  c.avail_gpa = kRam;
  EXPECT_FALSE(SplitQueue::Create(mem.ram(), c).has_value());
}

TEST(SplitQueue, EmptyRingPopsNothing) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 16);
  auto q = SplitQueue::Create(mem.ram(), drv.config());
  ASSERT_TRUE(q.has_value());
  ExpectNothingAvailable(*q);
}

TEST(SplitQueue, PopsReadableThenWritableBuffersTranslated) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 16);
  uint64_t a = drv.Alloc(16), b = drv.Alloc(512), c = drv.Alloc(1);
  drv.Publish(drv.AddChain({{a, 16, false}, {b, 512, true}, {c, 1, true}}));
  auto q = SplitQueue::Create(mem.ram(), drv.config());
  ASSERT_TRUE(q.has_value());
  auto chain = q->PopAvail();
  ASSERT_TRUE(chain.has_value()) << chain.error().ToString();
  ASSERT_TRUE(chain->has_value());
  const DescriptorChain& ch = **chain;
  EXPECT_EQ(ch.head, 0);
  ASSERT_EQ(ch.readable.size(), 1u);
  ASSERT_EQ(ch.writable.size(), 2u);
  EXPECT_EQ(ch.readable[0].gpa, a);
  EXPECT_EQ(ch.readable[0].bytes.data(), mem.At(a, 16).data());
  EXPECT_EQ(ch.writable[0].bytes.size(), 512u);
  EXPECT_EQ(ch.writable[1].gpa, c);
  EXPECT_EQ(ch.readable_len, 16u);
  EXPECT_EQ(ch.writable_len, 513u);
  EXPECT_EQ(q->in_flight(), 1u);
  ExpectNothingAvailable(*q);
}

TEST(SplitQueue, PushUsedWritesElementAndPublishesIndex) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 4);
  uint64_t buf = drv.Alloc(64);
  uint16_t h0 = drv.AddChain({{buf, 64, true}});
  uint16_t h1 = drv.AddChain({{buf, 32, true}});
  drv.Publish(h0);
  drv.Publish(h1);
  auto q = SplitQueue::Create(mem.ram(), drv.config());
  ASSERT_TRUE(q.has_value());
  auto c0 = q->PopAvail();
  auto c1 = q->PopAvail();
  ASSERT_TRUE(c0.has_value() && c0->has_value() && c1.has_value() && c1->has_value());
  // Completion out of order is allowed (§5.2: "probably out of order").
  ASSERT_TRUE(q->PushUsed((*c1)->head, 7).has_value());
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_EQ(drv.UsedElem(0), std::make_pair(uint32_t{h1}, 7u));
  ASSERT_TRUE(q->PushUsed((*c0)->head, 64).has_value());
  EXPECT_EQ(drv.used_idx(), 2);
  EXPECT_EQ(drv.UsedElem(1), std::make_pair(uint32_t{h0}, 64u));
  EXPECT_EQ(q->in_flight(), 0u);
}

TEST(SplitQueue, IndicesWrapAroundAt65536) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 2);
  uint64_t buf = drv.Alloc(8);
  drv.SetDesc(0, buf, 8, kVirtqDescFWrite, 0);
  QueueConfig c = drv.config();
  c.avail_base = 0xFFFF;
  drv.SetAvailIdx(0xFFFF);
  drv.SetUsedIdx(0xFFFF);
  auto q = SplitQueue::Create(mem.ram(), c);
  ASSERT_TRUE(q.has_value());
  for (int i = 0; i < 3; ++i) {
    drv.Publish(0);
    auto ch = q->PopAvail();
    ASSERT_TRUE(ch.has_value() && ch->has_value()) << i;
    ASSERT_TRUE(q->PushUsed(0, 8).has_value());
  }
  EXPECT_EQ(q->next_avail(), 2);
  EXPECT_EQ(drv.used_idx(), 2);
}

TEST(SplitQueue, FollowsAnIndirectTable) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 8);
  uint64_t h = drv.Alloc(16), d = drv.Alloc(4096), s = drv.Alloc(1);
  auto [table, len] = drv.IndirectTable({{h, 16, false}, {d, 4096, true}, {s, 1, true}});
  drv.SetDesc(3, table, len, kVirtqDescFIndirect | kVirtqDescFWrite, 0);  // WRITE ignored
  drv.Publish(3);
  auto q = SplitQueue::Create(mem.ram(), drv.config(false, /*indirect=*/true));
  ASSERT_TRUE(q.has_value());
  auto ch = q->PopAvail();
  ASSERT_TRUE(ch.has_value()) << ch.error().ToString();
  ASSERT_TRUE(ch->has_value());
  EXPECT_EQ((*ch)->head, 3);
  EXPECT_EQ((*ch)->readable_len, 16u);
  EXPECT_EQ((*ch)->writable_len, 4097u);
  ASSERT_TRUE(q->PushUsed(3, 4097).has_value());
  EXPECT_EQ(drv.UsedElem(0).first, 3u);
}

TEST(SplitQueue, FollowsDirectDescriptorsThenAnIndirectTable) {
  // §2.7.5.3.2: zero or more normal chained descriptors followed by one indirect.
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 8);
  uint64_t h = drv.Alloc(16), d = drv.Alloc(512), s = drv.Alloc(1);
  auto [table, len] = drv.IndirectTable({{d, 512, true}, {s, 1, true}});
  drv.SetDesc(0, h, 16, kVirtqDescFNext, 5);
  drv.SetDesc(5, table, len, kVirtqDescFIndirect, 0);
  drv.Publish(0);
  auto q = SplitQueue::Create(mem.ram(), drv.config(false, true));
  ASSERT_TRUE(q.has_value());
  auto ch = q->PopAvail();
  ASSERT_TRUE(ch.has_value() && ch->has_value());
  EXPECT_EQ((*ch)->readable.size(), 1u);
  EXPECT_EQ((*ch)->writable.size(), 2u);
}

TEST(SplitQueueNotify, WithoutEventIdxNotifiesUnlessNoInterrupt) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 4);
  uint64_t buf = drv.Alloc(8);
  drv.SetDesc(0, buf, 8, kVirtqDescFWrite, 0);
  auto q = SplitQueue::Create(mem.ram(), drv.config());
  ASSERT_TRUE(q.has_value());
  drv.Publish(0);
  ASSERT_TRUE(q->PopAvail().has_value());
  auto n = q->PushUsed(0, 8);
  ASSERT_TRUE(n.has_value());
  EXPECT_TRUE(*n);
  drv.SetAvailFlags(kVirtqAvailFNoInterrupt);
  drv.Publish(0);
  ASSERT_TRUE(q->PopAvail().has_value());
  n = q->PushUsed(0, 8);
  ASSERT_TRUE(n.has_value());
  EXPECT_FALSE(*n);
}

TEST(SplitQueueNotify, EventIdxNotifiesOnlyWhenReachingUsedEvent) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 8);
  uint64_t buf = drv.Alloc(8);
  for (uint16_t i = 0; i < 8; ++i) drv.SetDesc(i, buf, 8, kVirtqDescFWrite, 0);
  auto q = SplitQueue::Create(mem.ram(), drv.config(/*event_idx=*/true));
  ASSERT_TRUE(q.has_value());
  drv.SetUsedEvent(2);                         // "interrupt me when used idx passes 2"
  drv.SetAvailFlags(kVirtqAvailFNoInterrupt);  // ignored with EVENT_IDX (§2.7.7.2)
  for (uint16_t i = 0; i < 4; ++i) drv.Publish(i);
  std::vector<bool> notified;
  for (int i = 0; i < 4; ++i) {
    auto ch = q->PopAvail();
    ASSERT_TRUE(ch.has_value() && ch->has_value());
    auto n = q->PushUsed((*ch)->head, 8);
    ASSERT_TRUE(n.has_value());
    notified.push_back(*n);
  }
  EXPECT_EQ(notified, (std::vector<bool>{false, false, true, false}));
}

TEST(SplitQueueNotify, EmptyPopWithEventIdxAsksForTheNextKick) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 8);
  uint64_t buf = drv.Alloc(8);
  drv.SetDesc(0, buf, 8, kVirtqDescFWrite, 0);
  auto q = SplitQueue::Create(mem.ram(), drv.config(true));
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(drv.avail_event(), 0);
  drv.Publish(0);
  drv.Publish(0);
  ASSERT_TRUE(q->PopAvail().has_value());
  ASSERT_TRUE(q->PushUsed(0, 8).has_value());
  ASSERT_TRUE(q->PopAvail().has_value());
  ASSERT_TRUE(q->PushUsed(0, 8).has_value());
  ExpectNothingAvailable(*q);
  EXPECT_EQ(drv.avail_event(), 2);  // kick me when you write avail slot 2
}

TEST(SplitQueue, PushUsedRefusesHeadsItDidNotPop) {
  FakeGuestRam mem(kRam);
  FakeDriver drv(mem, 4);
  auto q = SplitQueue::Create(mem.ram(), drv.config());
  ASSERT_TRUE(q.has_value());
  auto r = q->PushUsed(0, 0);  // nothing in flight
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kInternal);
  drv.SetDesc(0, drv.Alloc(8), 8, 0, 0);
  drv.Publish(0);
  ASSERT_TRUE(q->PopAvail().has_value());
  EXPECT_FALSE(q->PushUsed(4, 0).has_value());  // head >= queue size
  EXPECT_EQ(drv.used_idx(), 0);
  EXPECT_FALSE(q->broken());
}

}  // namespace
}  // namespace vmm::virtio
