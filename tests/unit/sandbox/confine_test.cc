// The whole confinement, as a child sees it and as the kernel reports it from outside.
// As root, children get new namespaces directly; otherwise through a user namespace. A
// host that allows neither makes these tests skip with the reason.
#include "sandbox/confine.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "sandbox/landlock.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

using testing_util::Checks;
using testing_util::ExitCodeOf;
using testing_util::OptionsFor;
using testing_util::Pipe;
using testing_util::ReadAll;
using testing_util::WaitStatus;

class SandboxConfineRoleTest : public testing::TestWithParam<std::string> {};

TEST_P(SandboxConfineRoleTest, ChildHasNoPrivilegesNewNamespacesAndOnlyItsFds) {
  SKIP_UNLESS_SPAWN_WORKS();
  const std::string role = GetParam();
  if (auto abi = LandlockAbi(); !abi && role == "vtpm") {
    GTEST_SKIP() << "vtpm takes paths, which Confine allows only under Landlock: "
                 << abi.error().ToString();
  }
  Pipe go;
  int backend = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // image fd / state dir
  ASSERT_GE(backend, 0);
  ConfineOptions o = OptionsFor(role, {go.r, backend}, backend);
  auto pid = SpawnConfined(o, [&] {
    char c;
    return read(go.r, &c, 1) == 1 ? 0 : 3;  // wait until the parent has looked
  });
  close(backend);
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();

  auto child = ReadConfinementReport(*pid);
  auto self = ReadConfinementReport(0);
  ASSERT_TRUE(write(go.w, "g", 1) == 1);
  int status = WaitStatus(*pid);
  ASSERT_TRUE(child.has_value()) << child.error().ToString();
  ASSERT_TRUE(self.has_value()) << self.error().ToString();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  EXPECT_EQ(child->cap_eff, 0u) << DescribeReport(*child);
  EXPECT_EQ(child->cap_prm, 0u);
  EXPECT_EQ(child->cap_inh, 0u);
  EXPECT_EQ(child->cap_bnd, 0u);
  EXPECT_EQ(child->cap_amb, 0u);
  EXPECT_EQ(child->no_new_privs, 1);
  EXPECT_EQ(child->seccomp_mode, 2);
  for (const char* ns : {"mnt", "pid", "ipc", "uts", "net"}) {
    EXPECT_NE(child->namespaces[ns], self->namespaces[ns]) << ns;
    EXPECT_FALSE(child->namespaces[ns].empty()) << ns;
  }
  if (o.new_user_ns) {
    EXPECT_NE(child->namespaces["user"], self->namespaces["user"]);
  }
  std::vector<int> keep = {go.r, backend};
  std::sort(keep.begin(), keep.end());
  EXPECT_EQ(child->fds, keep) << DescribeReport(*child);
}

INSTANTIATE_TEST_SUITE_P(AllRoles, SandboxConfineRoleTest, testing::ValuesIn(RoleNames()),
                         testing_util::RoleTestName);

TEST(SandboxConfine, ChildSeesNoHostFilesAndIsPidOne) {
  SKIP_UNLESS_SPAWN_WORKS();
  if (auto abi = LandlockAbi(); !abi) {
    GTEST_SKIP() << "the probe policy takes paths, which Confine allows only under Landlock: "
                 << abi.error().ToString();
  }
  Pipe result;
  // The vcpu policy plus the probes this test makes (stat/open/mkdir are in no role).
  auto builder = BuilderForRole("vcpu");
  ASSERT_TRUE(builder.has_value());
  auto policy = builder->Allow("newfstatat", "test: probe paths")
                    .Allow("openat", "test: probe paths")
                    .Allow("mkdirat", "test: probe the root")
                    .Build();
  ASSERT_TRUE(policy.has_value()) << policy.error().ToString();
  ConfineOptions o = OptionsFor("vcpu", {result.w}, -1);
  o.policy = *policy;
  auto pid = SpawnConfined(o, [&] {
    Checks c(result.w);
    struct stat st {};
    for (const char* host_path : {"/etc/passwd", "/proc/self", "/dev/null", "/tmp", "/usr"}) {
      c.ExpectErrno(stat(host_path, &st), ENOENT, std::string("stat ") + host_path);
    }
    c.ExpectErrno(stat("/", &st), 0, "stat /");
    long rc = mkdirat(AT_FDCWD, "/x", 0700);
    c.Expect(rc < 0 && (errno == EROFS || errno == EACCES), "mkdir in the read-only root");
    // Landlock grants no access, so even the empty root cannot be listed (EACCES).
    c.ExpectErrno(open("/", O_RDONLY | O_DIRECTORY), EACCES, "open / for listing");
    c.Expect(getpid() == 1, "pid 1 of its own pid namespace");
    return c.Finish();
  });
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
  close(result.w);
  result.w = -1;
  EXPECT_EQ(ReadAll(result.r), "ok");
  EXPECT_TRUE(WIFEXITED(WaitStatus(*pid)));
}

std::atomic<int> g_kicks{0};

TEST(SandboxConfine, VcpuStartsAndKicksThreadsWhenFullyConfined) {
  SKIP_UNLESS_SPAWN_WORKS();
  Pipe result;
  auto pid = SpawnConfined(OptionsFor("vcpu", {result.w}, -1), [&] {
    Checks c(result.w);
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_kicks.fetch_add(1); };
    c.ExpectErrno(sigaction(SIGUSR1, &sa, nullptr), 0, "sigaction");
    std::atomic<bool> stop{false};
    // Landlock's signal scope (ABI 6) and the tgkill rule must both let the kick through.
    std::thread vcpu([&] {
      while (!stop.load()) {
        timespec nap{0, 1000000};
        nanosleep(&nap, nullptr);  // returns early (EINTR) on the kick, as KVM_RUN does
      }
    });
    c.Expect(pthread_kill(vcpu.native_handle(), SIGUSR1) == 0, "pthread_kill");
    while (g_kicks.load() == 0) {
    }
    stop.store(true);
    vcpu.join();
    return c.Finish();
  });
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
  close(result.w);
  result.w = -1;
  EXPECT_EQ(ReadAll(result.r), "ok");
  EXPECT_EQ(ExitCodeOf(*pid), 0);
}

TEST(SandboxConfine, RoleRlimitsAreApplied) {
  SKIP_UNLESS_SPAWN_WORKS();
  Pipe go;
  auto pid = SpawnConfined(OptionsFor("vcpu", {go.r}, -1), [&] {
    char c;
    return static_cast<int>(read(go.r, &c, 1));
  });
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
  std::ifstream limits("/proc/" + std::to_string(*pid) + "/limits");
  std::stringstream text;
  text << limits.rdbuf();
  (void)!write(go.w, "g", 1);
  WaitStatus(*pid);
  EXPECT_NE(text.str().find("Max core file size        0                    0"), std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find("Max open files            1024                 1024"),
            std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find("Max file size             1073741824           1073741824"),
            std::string::npos);
}

TEST(SandboxConfine, VtpmFilesStayBeneathTheStateDir) {
  SKIP_UNLESS_SPAWN_WORKS();
  if (auto abi = LandlockAbi(); !abi) GTEST_SKIP() << "needs Landlock: " << abi.error().ToString();
  char tmpl[] = "/tmp/vmm-vtpm-confine-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  int dir = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  Pipe result;
  auto pid = SpawnConfined(OptionsFor("vtpm", {dir, result.w}, dir), [&] {
    Checks c(result.w);
    int fd = openat(dir, "permall.tmp", kVtpmStateWriteFlags, 0600);
    c.ExpectErrno(fd, 0, "create temp state file");
    c.ExpectErrno(write(fd, "s", 1), 0, "write temp");
    c.ExpectErrno(renameat(dir, "permall.tmp", dir, "permall"), 0, "rename within the dir");
    // ".." leaves the state dir: Landlock denies what seccomp cannot see.
    c.ExpectErrno(openat(dir, "../vmm-escape", kVtpmStateWriteFlags, 0600), EACCES, "create ../x");
    c.ExpectErrno(openat(dir, "../../etc/passwd", kVtpmStateReadFlags), EACCES,
                  "read ../../etc/passwd");
    long rc = renameat(dir, "permall", dir, "../vmm-stolen");
    c.Expect(rc < 0 && (errno == EXDEV || errno == EACCES), "rename out of the dir");
    return c.Finish();
  });
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
  close(result.w);
  result.w = -1;
  EXPECT_EQ(ReadAll(result.r), "ok");
  WaitStatus(*pid);
  EXPECT_EQ(access("/tmp/vmm-escape", F_OK), -1);
  unlinkat(dir, "permall", 0);
  unlinkat(dir, "permall.tmp", 0);
  close(dir);
  rmdir(tmpl);
}

}  // namespace
}  // namespace vmm::sandbox
