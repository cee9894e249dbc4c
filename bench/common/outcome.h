// Pure helpers that turn a failed run of a bench's command into one line a reader can act
// on: which line of its output says why, and how the run ended. No I/O here, so they are
// unit-tested with canned output (tests/unit/bench/outcome_test.cc).
//
//   FirstErrorLine("qemu: warning: x\nKVM internal error. Suberror: 1\nRAX=0\n")
//     -> "KVM internal error. Suberror: 1"
//   CannotText("boot", "KVM internal error. Suberror: 1", "stopped on this line after 812 ms")
//     -> "cannot boot: KVM internal error. Suberror: 1 (stopped on this line after 812 ms)"
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bench {

// Lines on which a peer is stopped at once: fatal errors after which it does not exit but
// waits. QEMU with KVM: kvm_handle_internal_error() prints the first, and on an entry
// failure the second, then pauses the VM (vm_stop) and keeps running.
std::vector<std::string> DefaultFailLines();

// The first line containing one of `needles`, without its line end; "" if none.
std::string FindLine(std::string_view output, const std::vector<std::string>& needles);

// The line of `output` that best says why a run failed: the first that names an error
// (error, fatal, panic, failed, cannot, could not, unable, abort, killed, bad system call,
// segmentation fault; any case), else the last non-empty line, else "".
std::string FirstErrorLine(std::string_view output);

// "exit status 1", "killed by signal 31 (SIGSYS)" for a wait(2) status.
std::string DescribeWaitStatus(int status);

// "cannot <verb>: <line> (<how>)"; "(no output)" stands in for an empty line.
std::string CannotText(std::string_view verb, std::string_view line, std::string_view how);

// The ratio column of a side-by-side table: ours / peer with two decimals, or "n/a" unless
// both medians are positive (a side that could not run has none).
std::string RatioCell(double ours, double peer);

}  // namespace bench
