#include "vmm/vm/machine/profiler.h"

#include <gtest/gtest.h>

#include <string>

namespace vmm {
namespace {

// With fewer samples than a window, the report is the whole run only.
TEST(GuestProfiler, ShortRunHasNoLatestWindow) {
  GuestProfiler p(10);
  for (int i = 0; i < 7; ++i) p.Record(0x1000);
  const std::string r = p.Report(nullptr, 5);
  EXPECT_NE(r.find("profile: 7 samples of the guest RIP"), std::string::npos) << r;
  EXPECT_NE(r.find("0x1000"), std::string::npos) << r;
  EXPECT_EQ(r.find("latest"), std::string::npos) << r;
}

// A run that moved from one place to another: the whole-run table is led by the early
// address, the latest window by where the guest is now.
TEST(GuestProfiler, LatestWindowShowsWhereTheGuestIsNow) {
  GuestProfiler p(10);
  for (int i = 0; i < 100; ++i) p.Record(0xaaa0);  // early boot
  for (int i = 0; i < 15; ++i) p.Record(0xbbb0);   // the stall
  EXPECT_EQ(p.samples(), 115u);
  const std::string r = p.Report(nullptr, 1);
  const size_t latest = r.find("profile: the latest 15 samples");
  ASSERT_NE(latest, std::string::npos) << r;
  const std::string whole = r.substr(0, latest);
  const std::string recent = r.substr(latest);
  EXPECT_NE(whole.find("0xaaa0"), std::string::npos) << r;
  EXPECT_EQ(whole.find("0xbbb0"), std::string::npos) << r;  // top 1 only
  EXPECT_NE(recent.find("100.00%       15  0xbbb0"), std::string::npos) << r;
  EXPECT_EQ(recent.find("0xaaa0"), std::string::npos) << r;
}

// The latest window is the last complete window plus the one filling now.
TEST(GuestProfiler, LatestWindowSpansTheLastCompleteWindowAndTheCurrentOne) {
  GuestProfiler p(4);
  for (int i = 0; i < 8; ++i) p.Record(0x10);
  for (int i = 0; i < 2; ++i) p.Record(0x20);
  const std::string r = p.Report(nullptr, 5);
  const size_t latest = r.find("profile: the latest 6 samples");
  ASSERT_NE(latest, std::string::npos) << r;
  EXPECT_NE(r.find("66.67%        4  0x10", latest), std::string::npos) << r;
  EXPECT_NE(r.find("33.33%        2  0x20", latest), std::string::npos) << r;
}

}  // namespace
}  // namespace vmm
