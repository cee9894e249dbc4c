// Helpers shared by the sandbox tests: loading a role's filter in a death-test child,
// reading a child's answer from a pipe, waiting for it.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "tests/unit/common/in_child.h"

namespace vmm::sandbox::testing_util {

// fd numbers the parameterised rules compare against in filter-only tests; nothing in
// those tests uses these numbers for anything else.
inline constexpr int kTestImageFd = 1000;
inline constexpr int kTestStateDirFd = 1001;

inline PolicyParams TestParams(int image_fd = kTestImageFd, int state_dir_fd = kTestStateDirFd) {
  return {{std::string(kParamImageFd), static_cast<uint64_t>(image_fd)},
          {std::string(kParamStateDirFd), static_cast<uint64_t>(state_dir_fd)}};
}

// Death tests fork+exec a fresh copy of the binary ("threadsafe"): the filter is loaded
// in a single-threaded child and nothing in the test process is touched.
inline void UseThreadsafeDeathTests() { testing::GTEST_FLAG(death_test_style) = "threadsafe"; }

[[noreturn]] inline void Die(const std::string& why) {
  std::string line = "FAIL: " + why + "\n";
  (void)!write(STDERR_FILENO, line.data(), line.size());
  _exit(1);
}

// In a death-test child: no core file for the expected SIGSYS, then the filter.
inline void ApplyFilter(const Policy& policy, const PolicyParams& params) {
  rlimit zero{0, 0};
  setrlimit(RLIMIT_CORE, &zero);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Die("PR_SET_NO_NEW_PRIVS");
  auto applied = policy.Apply(params);
  if (!applied) Die(applied.error().ToString());
}

inline void ApplyRoleFilter(const std::string& role, const PolicyParams& params = TestParams()) {
  auto policy = PolicyForRole(role);
  if (!policy) Die(policy.error().ToString());
  ApplyFilter(*policy, params);
}

inline std::string ReadAll(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

inline int WaitStatus(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Waits for `pid` and gives how it ended: its exit code, or minus the signal that killed it,
// so that EXPECT_EQ(ExitCodeOf(pid), 0) says which.
inline int ExitCodeOf(pid_t pid) {
  const int st = WaitStatus(pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

// A test name for a case per role: the role's name with '_' for '-' (gtest allows no '-').
inline std::string RoleTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// A variable a confined child must not inherit from whoever started it.
inline constexpr char kTestSecret[] = "VMM_TEST_SECRET";

// Runs `body` in a forked child (InChild) whose environment has kTestSecret set: setenv would
// change the test process's own environment.
inline void InChildWithASecretInTheEnvironment(const std::function<void()>& body) {
  ::vmm::testing_util::InChild([&] {
    setenv(kTestSecret, "do-not-pass", 1);
    body();
  });
}

// The initial environment of process `pid` as the kernel keeps it: NUL-terminated entries.
inline std::string EnvironOf(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string env(std::istreambuf_iterator<char>(f), {});
  EXPECT_TRUE(f.good() || f.eof()) << "/proc/" << pid << "/environ is not readable";
  return env;
}

inline constexpr int kExitSkip = 77;  // a forked helper's "cannot test here"

// Why SpawnConfined cannot work on this host, or "" if it can.
inline std::string SpawnUnavailableReason() {
  ConfineOptions o{.role = "device-rng"};
  o.log = [](const std::string&) {};
  auto pid = SpawnConfined(o, [] { return 0; });
  if (pid) {
    WaitStatus(*pid);
    return "";
  }
  return pid.error().ToString();
}

#define SKIP_UNLESS_SPAWN_WORKS()                                                             \
  do {                                                                                        \
    static const std::string reason = ::vmm::sandbox::testing_util::SpawnUnavailableReason(); \
    if (!reason.empty()) GTEST_SKIP() << "cannot create namespaces here: " << reason;         \
  } while (0)

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) == 0) r = fds[0], w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) close(r);
    if (w >= 0) close(w);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

// Options with the role's parameters pointing at real kept fds, and notes discarded.
inline ConfineOptions OptionsFor(const std::string& role, std::vector<int> keep, int backend_fd) {
  ConfineOptions o{.role = role, .keep_fds = std::move(keep)};
  o.log = [](const std::string&) {};
  if (role == "device-blk") o.policy_params[std::string(kParamImageFd)] = backend_fd;
  if (role == "vtpm") {
    o.policy_params[std::string(kParamStateDirFd)] = backend_fd;
    o.landlock_file_dirs = {backend_fd};  // vtpm needs Landlock; callers skip without it
  }
  return o;
}

// For a confined child's body: writes "ok" or the first failed check to `fd`.
class Checks {
 public:
  explicit Checks(int fd) : fd_(fd) {}
  // `errno_expected` 0: the call must succeed (rc >= 0).
  void Expect(bool cond, const std::string& what) {
    if (!cond && failure_.empty()) failure_ = what;
  }
  void ExpectErrno(long rc, int errno_expected, const std::string& what) {
    int e = errno;
    if (errno_expected == 0) {
      Expect(rc >= 0, what + ": " + std::strerror(e));
    } else {
      Expect(rc < 0 && e == errno_expected,
             what + ": want " + strerrorname_np(errno_expected) + ", got rc " + std::to_string(rc) +
                 (rc < 0 ? std::string(" ") + strerrorname_np(e) : ""));
    }
  }
  int Finish() {
    std::string msg = failure_.empty() ? "ok" : failure_;
    (void)!write(fd_, msg.data(), msg.size());
    return failure_.empty() ? 0 : 1;
  }

 private:
  int fd_;
  std::string failure_;
};

}  // namespace vmm::sandbox::testing_util
