// Runs build/bin/vmm as a child process and captures its exit status, stdout and stderr.
// The binaries are found beside the test executable, so the tests run unchanged from the
// build tree or from a copy of build/bin (the nested-KVM harness).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace vmm::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Directory holding this test binary (and vmm, testguest.elf, ...).
std::string BinDir();
// Runs `argv` (argv[0] a path) with a wall-clock limit; kills it with SIGKILL past the limit.
// With `send_signal` non-zero, that signal is sent to the child `signal_after_ms` after start.
// With `at_time` set, it is called with the child's pid at that moment, before the signal.
ProcessResult RunProcess(const std::vector<std::string>& argv, int timeout_seconds,
                         int send_signal = 0, int signal_after_ms = 0,
                         std::function<void(pid_t)> at_time = {});
// Convenience: BinDir()/vmm run <args>.
ProcessResult RunVmm(const std::vector<std::string>& run_args, int timeout_seconds = 60);
// Writes bytes to a fresh file in a temporary directory and returns its path.
std::string WriteTempFile(const std::string& name, const std::vector<uint8_t>& bytes);
// True when /dev/kvm can be opened read-write.
bool HaveKvm();

}  // namespace vmm::testing
