// Malformed indirect descriptor tables (virtio 1.2 §2.7.5.3): each is its own fault.
#include <gtest/gtest.h>

#include "tests/unit/virtio/fake_driver.h"
#include "vmm/formats/virtio/fake_guest_ram.h"
#include "vmm/formats/virtio/split_queue.h"

namespace vmm::virtio {
namespace {

using testing::FakeDriver;

constexpr uint64_t kRam = 1 << 20;

class IndirectQueue : public ::testing::Test {
 protected:
  IndirectQueue() : mem_(kRam), drv_(mem_, 8) { buf_ = drv_.Alloc(64); }
  QueueFault Fault(bool negotiated = true) {
    drv_.Publish(0);
    auto q = SplitQueue::Create(mem_.ram(), drv_.config(false, negotiated));
    if (!q.has_value()) {
      ADD_FAILURE() << q.error().ToString();
      return QueueFault::kNone;
    }
    auto r = q->PopAvail();
    if (r.has_value()) return QueueFault::kNone;
    return q->fault();
  }
  FakeGuestRam mem_;
  FakeDriver drv_;
  uint64_t buf_;
};

TEST_F(IndirectQueue, WellFormedTableIsAccepted) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}, {buf_, 1, true}});
  drv_.SetDesc(0, table, len, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kNone);
}

TEST_F(IndirectQueue, NotNegotiated) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}});
  drv_.SetDesc(0, table, len, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(/*negotiated=*/false), QueueFault::kIndirectNotNegotiated);
}

TEST_F(IndirectQueue, IndirectWithNextIsRefused) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}});
  drv_.SetDesc(0, table, len, kVirtqDescFIndirect | kVirtqDescFNext, 1);
  drv_.SetDesc(1, buf_, 1, kVirtqDescFWrite, 0);
  EXPECT_EQ(Fault(), QueueFault::kIndirectWithNext);
}

TEST_F(IndirectQueue, NestedIndirectIsRefused) {
  auto [inner, inner_len] = drv_.IndirectTable({{buf_, 16, false}});
  auto [outer, outer_len] = drv_.IndirectTable({{buf_, 16, false}, {buf_, 1, true}});
  // Turn the outer table's second entry into a reference to the inner table.
  drv_.SetDesc(1, inner, inner_len, kVirtqDescFIndirect, 0, outer);
  drv_.SetDesc(0, outer, outer_len, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kNestedIndirect);
}

TEST_F(IndirectQueue, LengthNotAMultipleOf16IsRefused) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}, {buf_, 1, true}});
  drv_.SetDesc(0, table, len - 1, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kBadIndirectTable);
}

TEST_F(IndirectQueue, ZeroLengthTableIsRefused) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}});
  (void)len;
  drv_.SetDesc(0, table, 0, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kBadIndirectTable);
}

TEST_F(IndirectQueue, MoreEntriesThanTheQueueSizeIsRefused) {
  uint64_t table = drv_.Alloc(16 * 9);
  drv_.SetDesc(0, table, 16 * 9, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kBadIndirectTable);
}

TEST_F(IndirectQueue, AbsurdTableLengthIsRefusedBeforeTranslation) {
  drv_.SetDesc(0, 0, 0xFFFFFFF0, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kBadIndirectTable);
}

TEST_F(IndirectQueue, TableOutsideRamIsRefused) {
  drv_.SetDesc(0, kRam - 16, 32, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kBufferOutsideRam);
}

TEST_F(IndirectQueue, NextPastTheEndOfTheTableIsRefused) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}, {buf_, 1, true}});
  drv_.SetDesc(1, buf_, 1, kVirtqDescFWrite | kVirtqDescFNext, 2, table);  // 2 of 2
  drv_.SetDesc(0, table, len, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kDescIndexOutOfRange);
}

TEST_F(IndirectQueue, LoopInsideTheTableIsChainTooLong) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}, {buf_, 16, false}});
  drv_.SetDesc(1, buf_, 16, kVirtqDescFNext, 0, table);  // 1 -> 0 -> 1 ...
  drv_.SetDesc(0, table, len, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kChainTooLong);
}

TEST_F(IndirectQueue, BufferOutsideRamInsideTheTable) {
  auto [table, len] = drv_.IndirectTable({{buf_, 16, false}, {kRam, 1, true}});
  drv_.SetDesc(0, table, len, kVirtqDescFIndirect, 0);
  EXPECT_EQ(Fault(), QueueFault::kBufferOutsideRam);
}

TEST_F(IndirectQueue, UnalignedTableIsReadCorrectly) {
  // Nothing in §2.7.5.3 requires alignment of the table itself.
  uint64_t table = drv_.Alloc(40, 16) + 3;
  drv_.SetDesc(0, buf_, 16, kVirtqDescFNext, 1, table);
  drv_.SetDesc(1, buf_ + 16, 5, kVirtqDescFWrite, 0, table);
  drv_.SetDesc(0, table, 32, kVirtqDescFIndirect, 0);
  drv_.Publish(0);
  auto q = SplitQueue::Create(mem_.ram(), drv_.config(false, true));
  ASSERT_TRUE(q.has_value());
  auto ch = q->PopAvail();
  ASSERT_TRUE(ch.has_value() && ch->has_value());
  EXPECT_EQ((*ch)->writable[0].gpa, buf_ + 16);
  EXPECT_EQ((*ch)->writable_len, 5u);
}

}  // namespace
}  // namespace vmm::virtio
