// Starting confined children: the parent-death signal, user namespaces, the exec path
// (SpawnRole), how errors come back, and the preconditions Spawn/Confine enforce.
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/unix_socket.h"
#include "sandbox/confine.h"
#include "tests/unit/common/in_child.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

using testing_util::EnvironOf;
using testing_util::ExitCodeOf;
using testing_util::InChildWithASecretInTheEnvironment;
using testing_util::kExitSkip;
using testing_util::kTestSecret;
using testing_util::OptionsFor;
using testing_util::Pipe;
using testing_util::WaitStatus;
using vmm::testing_util::InChild;

TEST(SandboxSpawn, ChildDiesWithItsParent) {
  SKIP_UNLESS_SPAWN_WORKS();
  // W (a subreaper) forks H; H spawns the confined C and exits; C must get SIGKILL.
  pid_t w = fork();
  ASSERT_GE(w, 0);
  if (w == 0) {
    alarm(20);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    Pipe hold, report;
    pid_t h = fork();
    if (h == 0) {
      auto c = SpawnConfined(OptionsFor("device-rng", {hold.r}, -1), [&] {
        char x;
        return static_cast<int>(read(hold.r, &x, 1));  // blocks: W keeps hold.w open
      });
      pid_t cpid = c ? *c : -1;
      (void)!write(report.w, &cpid, sizeof(cpid));
      _exit(0);
    }
    pid_t cpid = -1;
    if (read(report.r, &cpid, sizeof(cpid)) != sizeof(cpid) || cpid <= 0) _exit(2);
    WaitStatus(h);
    int st = WaitStatus(cpid);  // reparented to W
    _exit(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? 0 : 3);
  }
  EXPECT_EQ(ExitCodeOf(w), 0) << "the wrapper";
}

// As root, become nobody first (root needs no user namespace). `dumpable` 1 models a
// process started by an unprivileged user; 0 one that dropped root with setuid().
void BecomeNobody(int dumpable) {
  if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
    _exit(4);
  }
  prctl(PR_SET_DUMPABLE, dumpable);
}

TEST(SandboxSpawn, WorksUnprivilegedThroughAUserNamespace) {
  pid_t w = fork();
  ASSERT_GE(w, 0);
  if (w == 0) {
    BecomeNobody(1);
    Pipe go;
    ConfineOptions o = OptionsFor("vcpu", {go.r}, -1);
    o.new_user_ns = true;
    auto pid = SpawnConfined(o, [&] {
      char c;
      return read(go.r, &c, 1) == 1 ? 0 : 3;
    });
    if (!pid) {
      std::fprintf(stderr, "SpawnConfined: %s\n", pid.error().ToString().c_str());
      _exit(pid.error().message().find("clone") != std::string::npos ? kExitSkip : 2);
    }
    auto r = ReadConfinementReport(*pid);
    (void)!write(go.w, "g", 1);
    int st = WaitStatus(*pid);
    if (!r) {
      std::fprintf(stderr, "report: %s\n", r.error().ToString().c_str());
      _exit(5);
    }
    if (r->cap_eff != 0 || r->cap_bnd != 0 || r->seccomp_mode != 2 || r->no_new_privs != 1) {
      std::fprintf(stderr, "report: %s\n", DescribeReport(*r).c_str());
      _exit(6);
    }
    _exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 7);
  }
  const int code = ExitCodeOf(w);
  if (code == kExitSkip) GTEST_SKIP() << "unprivileged user namespaces are disabled";
  EXPECT_EQ(code, 0);
}

TEST(SandboxSpawn, WorksForACallerThatDroppedRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop it";
  pid_t w = fork();
  ASSERT_GE(w, 0);
  if (w == 0) {
    BecomeNobody(0);
    ConfineOptions o = OptionsFor("device", {}, -1);
    o.new_user_ns = true;
    auto pid = SpawnConfined(o, [] { return 0; });
    if (!pid) {
      std::fprintf(stderr, "SpawnConfined: %s\n", pid.error().ToString().c_str());
      _exit(pid.error().message().find("clone") != std::string::npos ? kExitSkip : 2);
    }
    int st = WaitStatus(*pid);
    _exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 && prctl(PR_GET_DUMPABLE) == 0 ? 0 : 3);
  }
  const int code = ExitCodeOf(w);
  if (code == kExitSkip) GTEST_SKIP() << "unprivileged user namespaces are disabled";
  EXPECT_EQ(code, 0);
}

TEST(SandboxSpawn, SpawnRoleExecsAsPidOneWithOnlyKeptFds) {
  SKIP_UNLESS_SPAWN_WORKS();
  Pipe kept, other;
  std::string script = "test $$ = 1 && [ -e /proc/self/fd/" + std::to_string(kept.r) +
                       " ] && [ ! -e /proc/self/fd/" + std::to_string(other.r) + " ] && exit 7";
  ConfineOptions o = OptionsFor("device", {kept.r}, -1);
  std::vector<std::string> notes;
  o.log = [&](const std::string& n) { notes.push_back(n); };
  auto pid = SpawnRole(o, "/bin/sh", {"sh", "-c", script});
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
  int st = WaitStatus(*pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 7) << "status " << st;
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_TRUE(notes[0] == "selinux: SELinux off" || notes[0].rfind("selinux: exec context", 0) == 0)
      << notes[0];
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif

// The manager's environment (tokens, proxies, paths) must not reach a confined role: the
// child's initial environment, as the kernel keeps it in /proc/PID/environ, is empty but
// for the sanitizer runtimes' options in a sanitizer build.
TEST(SandboxSpawn, SpawnRolePassesNoneOfTheCallersEnvironment) {
  SKIP_UNLESS_SPAWN_WORKS();
  InChildWithASecretInTheEnvironment([] {
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    Pipe hold;
    ConfineOptions o = OptionsFor("device", {hold.r}, -1);
    auto pid = SpawnRole(o, "/bin/sh", {"sh", "-c", "read x <&" + std::to_string(hold.r)});
    ASSERT_TRUE(pid) << pid.error().ToString();
    const std::string env = EnvironOf(*pid);
    (void)!write(hold.w, "\n", 1);
    EXPECT_TRUE(WIFEXITED(WaitStatus(*pid)));
    std::string shown = env;
    std::replace(shown.begin(), shown.end(), '\0', ' ');
    EXPECT_EQ(env.find(kTestSecret), std::string::npos)
        << "the caller's VMM_TEST_SECRET reached the child: '" << shown << "'";
    // A sanitizer build passes the sanitizers' options on (the caller's, whichever it has:
    // ctest under scripts/test.sh sets UBSAN_OPTIONS too), and nothing else.
    bool only_options = true;
    for (size_t at = 0; at < env.size();) {
      const size_t end = env.find('\0', at);
      const std::string entry = env.substr(at, end == std::string::npos ? end : end - at);
      only_options &= entry.rfind("ASAN_OPTIONS=", 0) == 0 ||
                      entry.rfind("UBSAN_OPTIONS=", 0) == 0 || entry.rfind("LSAN_OPTIONS=", 0) == 0;
      at = end == std::string::npos ? env.size() : end + 1;
    }
    if (kSanitizerBuild) {
      EXPECT_TRUE(only_options) << "child environment: '" << shown << "'";
      EXPECT_EQ(env.find(std::string("ASAN_OPTIONS=detect_leaks=0") + '\0'), 0u)
          << "child environment: '" << shown << "'";
    } else {
      EXPECT_TRUE(env.empty()) << "child environment: '" << shown << "'";
    }
  });
}

TEST(SandboxSpawn, SpawnRoleReportsAFailedExec) {
  SKIP_UNLESS_SPAWN_WORKS();
  auto pid = SpawnRole(OptionsFor("device", {}, -1), "/nonexistent/vmm-role", {"x"});
  ASSERT_FALSE(pid.has_value());
  EXPECT_EQ(pid.error().sys_errno(), ENOENT);
  EXPECT_NE(pid.error().message().find("execve"), std::string::npos);
}

TEST(SandboxSpawn, ErrorsNameTheFailingStep) {
  SKIP_UNLESS_SPAWN_WORKS();
  ConfineOptions o = OptionsFor("vcpu", {}, -1);
  o.rlimits = {{RLIMIT_NOFILE, 64}, {4242, 1}};  // no such resource: EINVAL in the child
  auto pid = SpawnConfined(o, [] { return 0; });
  ASSERT_FALSE(pid.has_value());
  EXPECT_NE(pid.error().message().find("confine vcpu: rlimits"), std::string::npos)
      << pid.error().ToString();
  EXPECT_EQ(pid.error().sys_errno(), EINVAL);
}

TEST(SandboxSpawn, MissingPolicyParameterFailsBeforeAnythingIsApplied) {
  SKIP_UNLESS_SPAWN_WORKS();
  ConfineOptions o{.role = "device-blk"};
  auto pid = SpawnConfined(o, [] { return 0; });
  ASSERT_FALSE(pid.has_value());
  EXPECT_NE(pid.error().message().find("confine device-blk: policy: parameter $image_fd"),
            std::string::npos)
      << pid.error().ToString();
}

TEST(SandboxSpawn, ConfineRefusesAProcessThatIsNotPidOne) {
  InChild([] {
    auto r = Confine(OptionsFor("device", {}, -1));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("confine device: namespaces: not pid 1"), std::string::npos)
        << r.error().ToString();
  });
}

TEST(SandboxSpawn, SpawnRefusesAMultithreadedCaller) {
  InChild([] {
    Pipe block;
    std::thread t([&] {
      char c;
      (void)!read(block.r, &c, 1);
    });
    auto pid = SpawnConfined(OptionsFor("device", {}, -1), [] { return 0; });
    (void)!write(block.w, "x", 1);
    t.join();
    ASSERT_FALSE(pid);
    EXPECT_NE(pid.error().message().find("2 threads"), std::string::npos) << pid.error().ToString();
  });
}

// The child's own stdout and stderr are closed too, so a failure shows as its exit status.
TEST(SandboxSpawn, CloseFdsExceptKeepsOnlyTheList) {
  InChild([] {
    Pipe a, b;
    ASSERT_TRUE(CloseFdsExcept(std::vector<int>{b.w}));
    auto r = ReadConfinementReport(0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->fds, std::vector<int>{b.w});
    EXPECT_FALSE(CloseFdsExcept(std::vector<int>{a.r}).has_value());  // a.r is closed now
  });
}

TEST(SandboxSpawn, SelinuxHookReportsTheHostState) {
  pid_t w = fork();  // setexeccon would change the test process's next exec
  ASSERT_GE(w, 0);
  if (w == 0) {
    auto r = SetSelinuxExecContext("vcpu", "s0");
    if (!r) _exit(2);
    _exit(*r == "SELinux off" ? 0 : 1);
  }
  const int code = ExitCodeOf(w);
  if (code == 1) GTEST_SKIP() << "SELinux is enabled here: exec context was set";
  EXPECT_EQ(code, 0);
}

}  // namespace
}  // namespace vmm::sandbox

namespace vmm::sandbox {
namespace {

// ConfineOptions::bind_dir (the vsock back-end's socket directory): a socket in it is
// reachable at kBoundDirInside, one outside it is not, under the device-vsock filter.
TEST(SandboxSpawn, BoundDirectoryIsTheOnlyReachableSocketDirectory) {
  SKIP_UNLESS_SPAWN_WORKS();
  char inside_tmpl[] = "/tmp/vmm-bind-in-XXXXXX";
  char outside_tmpl[] = "/tmp/vmm-bind-out-XXXXXX";
  ASSERT_NE(mkdtemp(inside_tmpl), nullptr);
  ASSERT_NE(mkdtemp(outside_tmpl), nullptr);
  const std::string in_path = std::string(inside_tmpl) + "/l_5";
  const std::string out_path = std::string(outside_tmpl) + "/l_6";
  auto in = ListenUnix(in_path, 4);
  auto out = ListenUnix(out_path, 4);
  ASSERT_TRUE(in && out);
  auto try_connect = [](const std::string& path) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    bool ok = connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(s);
    return ok;
  };
  ConfineOptions o = OptionsFor("device-vsock", {STDERR_FILENO}, -1);
  o.bind_dir = inside_tmpl;
  auto pid = SpawnConfined(o, [&] {
    int code = 0;
    if (!try_connect(std::string(kBoundDirInside) + "/l_5")) code |= 1;
    if (try_connect(out_path)) code |= 2;                                          // host path
    if (try_connect(std::string(kBoundDirInside) + "/../" + out_path)) code |= 4;  // climbing
    if (try_connect(in_path)) code |= 8;  // the host's name for the same socket
    return code;
  });
  ASSERT_TRUE(pid) << pid.error().ToString();
  int st = testing_util::WaitStatus(*pid);
  ASSERT_TRUE(WIFEXITED(st)) << "status " << st;
  EXPECT_EQ(WEXITSTATUS(st), 0) << "bit 1: bound socket unreachable; 2, 4, 8: outside reached";
  UniqueFd accepted = AcceptConnection(in->get(), /*nonblocking=*/true);
  EXPECT_TRUE(accepted.valid()) << "the listener in the bound directory saw no connection";
  std::filesystem::remove_all(inside_tmpl);
  std::filesystem::remove_all(outside_tmpl);
}

}  // namespace
}  // namespace vmm::sandbox
