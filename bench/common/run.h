// One run of one command of a side-by-side bench (ours vs a peer such as QEMU): started in
// its own process group, stdin /dev/null, stdout and stderr merged into one pipe, timed
// from fork, and stopped promptly when it cannot run the payload:
//   - a line from `fail_lines` (QEMU's "KVM internal error", after which it pauses and
//     waits instead of exiting): stopped at once;
//   - no exit within `timeout_s`, or no output for `stall_s`: stopped;
//   - the line callback said the payload is done but the process has not exited
//     `done_grace_s` later: stopped.
// "Stopped" is SIGTERM to the process group, then SIGKILL 2 s later.
//
//   bench::RunLimits limits;
//   limits.watch = {"testguest: hello"};
//   bench::RunResult r = bench::RunCommand({"qemu-system-x86_64", ...}, limits);
//   if (!r.ok()) std::printf("qemu: %s\n", bench::CannotText("boot", r.WhyLine(), r.how).c_str());
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/common/outcome.h"

namespace bench {

struct RunLimits {
  double timeout_s = 60;
  double stall_s = 30;      // 0: no stall limit
  double done_grace_s = 5;  // after the line callback returned true
  std::vector<std::string> fail_lines = DefaultFailLines();
  std::vector<std::string> watch;  // substrings whose first appearance is timed (seen_ms)
};

enum class RunEnd {
  kExited,           // the process ended by itself (any status)
  kFailLine,         // it printed a fail line and was stopped
  kTimeout,          // no exit within timeout_s
  kStall,            // no output for stall_s
  kNoExitAfterDone,  // done, but no exit within done_grace_s
  kNotStarted,       // fork or pipe failed
};

struct RunResult {
  RunEnd end = RunEnd::kNotStarted;
  int status = 0;               // wait(2) status, once reaped
  double exit_ms = -1;          // fork to end of output and reaping
  double peak_rss_mib = 0;      // ru_maxrss of the reaped child
  std::string output;           // stdout and stderr, merged
  std::string fail_line;        // the fail line, for kFailLine
  std::vector<double> seen_ms;  // per RunLimits::watch: ms from fork, -1 if never seen
  std::string how;              // how it ended, e.g. "exit status 1", "no exit within 60 s"

  // Ended by itself with status 0.
  bool ok() const;
  // The line that says why the run failed: the fail line, else FirstErrorLine(output).
  std::string WhyLine() const;
};

// Called per output line (no line end) with the ms since fork; returns true when the
// payload is done (the process should exit within done_grace_s).
using LineFn = std::function<bool(std::string_view line, double at_ms)>;

RunResult RunCommand(const std::vector<std::string>& argv, const RunLimits& limits,
                     const LineFn& on_line = {});

// The command-line flags the benches share, at argv[i]: --runs N, --timeout S, --stall S,
// --fail-on TEXT, and "--name NAME -- CMD ARGS..." (a command runs to the next --vs-name,
// which starts the next "--vs-name NAME -- CMD ..."). Returns false when argv[i] is none of
// them (or lacks its value); else consumes it, leaving i on its last word.
struct NamedCommand {
  std::string name;
  std::vector<std::string> cmd;
};
bool ParseCommonFlag(int argc, char** argv, int& i, int& runs, RunLimits& limits,
                     std::vector<NamedCommand>& commands);

}  // namespace bench
