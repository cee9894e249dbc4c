// What one PopAvail of a split queue under test gave, for the split-queue tests of
// well-behaved and hostile drivers:
//   ExpectNothingAvailable(*q);                                   // no chain, no fault
//   EXPECT_EQ(PopFault(q), QueueFault::kChainTooLong);            // the fault, named
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "vmm/formats/virtio/split_queue.h"

namespace vmm::virtio::testing {

// The driver has published nothing (more): PopAvail succeeds without a chain.
inline void ExpectNothingAvailable(SplitQueue& q) {
  auto chain = q.PopAvail();
  ASSERT_TRUE(chain.has_value()) << chain.error().ToString();
  EXPECT_FALSE(chain->has_value());
}

// Pops once and returns the fault (kNone if a chain or nothing came back); an error must be
// a guest error that names the fault.
inline QueueFault PopFault(SplitQueue& q) {
  auto r = q.PopAvail();
  if (r.has_value()) return QueueFault::kNone;
  EXPECT_EQ(r.error().kind(), ErrorKind::kGuest);
  EXPECT_NE(r.error().message().find(QueueFaultName(q.fault())), std::string::npos);
  return q.fault();
}

}  // namespace vmm::virtio::testing
