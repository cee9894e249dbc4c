// RunCommand against small shell commands: a peer that prints a fail line, goes silent or
// does not exit after its payload is done is stopped at once, with the line that says why.
#include "bench/common/run.h"

#include <gtest/gtest.h>

namespace bench {
namespace {

TEST(BenchRun, StopsAPeerOnItsFailLineAtOnce) {
  RunLimits limits;
  limits.watch = {"hello"};
  RunResult r = RunCommand(
      {"sh", "-c", "echo hello; echo 'KVM internal error. Suberror: 1' >&2; sleep 600"}, limits);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.end, RunEnd::kFailLine);
  EXPECT_EQ(r.WhyLine(), "KVM internal error. Suberror: 1");
  EXPECT_GE(r.seen_ms[0], 0);
  EXPECT_LT(r.exit_ms, 10000);  // not the 600 s of the sleep: the whole group was stopped
}

TEST(BenchRun, StopsASilentPeerAfterTheStallLimit) {
  RunLimits limits;
  limits.stall_s = 0.5;
  RunResult r = RunCommand({"sh", "-c", "echo started; sleep 600"}, limits);
  EXPECT_EQ(r.end, RunEnd::kStall);
  EXPECT_EQ(r.WhyLine(), "started");
  EXPECT_NE(r.how.find("no output for 0.5 s"), std::string::npos) << r.how;
  EXPECT_LT(r.exit_ms, 10000);
}

TEST(BenchRun, ReportsAnExitStatusAndTheLineCallbackSeesEveryLine) {
  std::vector<std::string> lines;
  RunResult r = RunCommand({"sh", "-c", "echo one; echo 'two: error' >&2; printf three; exit 3"},
                           RunLimits{}, [&](std::string_view line, double) {
                             lines.emplace_back(line);
                             return false;
                           });
  EXPECT_EQ(r.end, RunEnd::kExited);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.how, "exit status 3");
  EXPECT_EQ(r.WhyLine(), "two: error");
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two: error", "three"}));
}

TEST(BenchRun, DoneButNoExitIsStoppedAfterTheGrace) {
  RunLimits limits;
  limits.done_grace_s = 0.3;
  RunResult r = RunCommand({"sh", "-c", "echo done; sleep 600"}, limits,
                           [](std::string_view line, double) { return line == "done"; });
  EXPECT_EQ(r.end, RunEnd::kNoExitAfterDone);
  EXPECT_LT(r.exit_ms, 10000);
}

TEST(BenchRun, ACommandThatCannotBeExecutedSaysSo) {
  RunResult r = RunCommand({"/nonexistent/qemu-system-x86_64"}, RunLimits{});
  EXPECT_EQ(r.end, RunEnd::kExited);
  EXPECT_EQ(r.how, "exit status 127");
  EXPECT_EQ(r.WhyLine(),
            "cannot execute /nonexistent/qemu-system-x86_64: No such file or directory");
}

}  // namespace
}  // namespace bench
