// BackgroundVm: `vmm run ARGS` in the background for tests that talk to a running VM (its
// API socket, its console file); stopped with SIGTERM (then SIGKILL) when it goes out of scope.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/vmm_process.h"

extern char** environ;

namespace vmm::testing {

inline std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Starts `BIN_DIR/binary subcommand ARGS` in the background, its stdout and stderr into the
// files `out` and `err` (created or truncated); its pid, or -1.
inline pid_t SpawnInBackground(const std::string& binary, const std::string& subcommand,
                               const std::vector<std::string>& args, const std::string& out,
                               const std::string& err) {
  std::vector<std::string> argv = {BinDir() + "/" + binary, subcommand};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c;
  for (std::string& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  if (posix_spawn(&pid, c[0], &actions, nullptr, c.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// `vmm run ARGS` in the background, its stdout (the guest's console) and stderr into files.
class BackgroundVm {
 public:
  BackgroundVm(const std::vector<std::string>& args, const std::string& out, const std::string& err)
      : pid_(SpawnInBackground("vmm", "run", args, out, err)) {}
  ~BackgroundVm() { Stop(); }
  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  // Waits up to `seconds` for vmm to exit on its own; its exit status, or -1 (still running or
  // killed by a signal).
  int Wait(int seconds) {
    for (int i = 0; i < seconds * 10 && pid_ > 0; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }
  // Reads the console file `out` until it holds `marker` (the test guest's "testguest:
  // lingering", say), vmm ends, or `seconds` pass; returns the console as last read.
  std::string WaitForConsole(const std::string& out, const std::string& marker,
                             int seconds = 120) const {
    std::string text;
    for (int i = 0; i < seconds * 10 && running(); ++i) {
      text = ReadText(out);
      if (text.find(marker) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return text;
  }
  // SIGTERM, then SIGKILL if it is still there 30 s later.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300 && waitpid(pid_, nullptr, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (waitpid(pid_, nullptr, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace vmm::testing
