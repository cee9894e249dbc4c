#include "bench/common/outcome.h"

#include <signal.h>

#include <gtest/gtest.h>

namespace bench {
namespace {

TEST(BenchOutcome, FindLineReturnsTheFirstLineWithANeedle) {
  const char* out =
      "testguest: hello (boot=pvh)\r\nKVM internal error. Suberror: 1\nemulation failure\n";
  EXPECT_EQ(FindLine(out, DefaultFailLines()), "KVM internal error. Suberror: 1");
  EXPECT_EQ(FindLine(out, {"nothing like it"}), "");
  EXPECT_EQ(FindLine(out, {""}), "");  // an empty needle matches nothing
}

TEST(BenchOutcome, FirstErrorLinePrefersALineNamingAnError) {
  EXPECT_EQ(FirstErrorLine("starting\nvmm: error: KVM_RUN: Bad address\nvmm: stopping\n"),
            "vmm: error: KVM_RUN: Bad address");
  EXPECT_EQ(FirstErrorLine("a\nqemu-system-x86_64: -accel kvm: Could not access KVM kernel "
                           "module: No such file or directory\nqemu: failed to initialize kvm\n"),
            "qemu-system-x86_64: -accel kvm: Could not access KVM kernel module: No such file or "
            "directory");
}

TEST(BenchOutcome, FirstErrorLineFallsBackToTheLastNonEmptyLine) {
  EXPECT_EQ(FirstErrorLine("testguest: hello (boot=pvh)\ncheck bootinfo: ok\n\n  \n"),
            "check bootinfo: ok");
  EXPECT_EQ(FirstErrorLine(""), "");
  EXPECT_EQ(FirstErrorLine("no newline at the end"), "no newline at the end");
}

TEST(BenchOutcome, DescribeWaitStatus) {
  EXPECT_EQ(DescribeWaitStatus(1 << 8), "exit status 1");
  EXPECT_EQ(DescribeWaitStatus(SIGSYS), "killed by signal 31 (SIGSYS)");
}

TEST(BenchOutcome, CannotText) {
  EXPECT_EQ(CannotText("boot", "KVM internal error. Suberror: 1", "stopped on this line"),
            "cannot boot: KVM internal error. Suberror: 1 (stopped on this line)");
  EXPECT_EQ(CannotText("serve", "", "exit status 1"), "cannot serve: (no output) (exit status 1)");
}

TEST(BenchOutcome, RatioCellNeedsBothMedians) {
  EXPECT_EQ(RatioCell(3, 2), "1.50");
  EXPECT_EQ(RatioCell(1, 3), "0.33");
  EXPECT_EQ(RatioCell(0, 2), "n/a");
  EXPECT_EQ(RatioCell(2, -1), "n/a");  // a side that could not run
}

}  // namespace
}  // namespace bench
