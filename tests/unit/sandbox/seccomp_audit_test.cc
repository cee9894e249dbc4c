#include "sandbox/seccomp_audit.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sandbox/confine.h"

namespace vmm::sandbox {
namespace {

constexpr char kRecord[] =
    "6,4162,3998919068,-;audit: type=1326 audit(1795522226.780:631): auid=4294967295 uid=0 "
    "gid=0 ses=4294967295 pid=30380 comm=\"vmm-device\" exe=\"/x/vmm-device\" sig=31 "
    "arch=c000003e syscall=41 compat=0 ip=0x7fe3db91f829 code=0x80000000";

TEST(SeccompAudit, ParsesTheSyscallOfTheRecordForThatPid) {
  EXPECT_EQ(ParseSeccompAuditLine(kRecord, 30380), 41);
  EXPECT_EQ(ParseSeccompAuditLine(kRecord, 3038), std::nullopt) << "pid must match whole";
  EXPECT_EQ(ParseSeccompAuditLine(kRecord, 4294967295), std::nullopt) << "auid is not pid";
  EXPECT_EQ(ParseSeccompAuditLine("audit: type=1400 pid=30380 syscall=41", 30380), std::nullopt);
  EXPECT_EQ(ParseSeccompAuditLine("type=1326 pid=30380 syscall=", 30380), std::nullopt);
  EXPECT_EQ(ParseSeccompAuditLine("type=1326 pid=30380 syscall=99999999999", 30380), std::nullopt);
}

TEST(SeccompAudit, NamesSyscalls) {
  EXPECT_EQ(SyscallName(41), "socket (41)");
  EXPECT_EQ(SyscallName(4000), "syscall 4000");
}

// A confined device process that calls socket() dies by SIGSYS, and its parent names the
// syscall from the kernel's record: what `vmm run` prints when a child is killed.
TEST(SeccompAudit, TheParentNamesTheSyscallThatKilledAConfinedChild) {
  int probe = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (probe < 0) GTEST_SKIP() << "/dev/kmsg is not readable here (needs root)";
  close(probe);
  ConfineOptions o;
  o.role = "device-rng";
  o.keep_fds = {STDERR_FILENO};
  o.log = [](const std::string&) {};
  auto pid = SpawnConfined(o, [] { return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 1; });
  if (!pid) GTEST_SKIP() << "cannot confine here: " << pid.error().ToString();
  int status = 0;
  ASSERT_EQ(waitpid(*pid, &status, 0), *pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(WTERMSIG(status), SIGSYS);
  auto name = SeccompKilledSyscall(*pid, 2000);
  if (!name) GTEST_SKIP() << "no audit record in /dev/kmsg (an audit daemon may take them)";
  EXPECT_EQ(*name, "socket (41)");
}

}  // namespace
}  // namespace vmm::sandbox
