// The manager's device processes as `vmm run --rng` starts them (SpawnRole, the real
// vmm-device binary beside this test), without KVM: started, then reaped when the session
// closes.
#include "vmm/manager/device_processes.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "sandbox/confine.h"
#include "tests/unit/common/last_line_with.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm {
namespace {

using sandbox::testing_util::ExitCodeOf;
using sandbox::testing_util::WaitStatus;
using testing_util::LastLineWith;

std::string TempPath(const std::string& name) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/vmm-devproc-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back(0);
  return std::string(mkdtemp(buf.data())) + "/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A real device process gets none of the manager's environment (sandbox::ChildEnvironment).
TEST(DeviceProcesses, RngProcessGetsNoneOfTheManagersEnvironment) {
  SKIP_UNLESS_SPAWN_WORKS();
  sandbox::testing_util::InChildWithASecretInTheEnvironment([] {
    VmConfig cfg;
    cfg.rng = true;
    auto devs = StartDeviceProcesses(cfg);
    ASSERT_TRUE(devs) << devs.error().ToString();
    const std::string env = sandbox::testing_util::EnvironOf(devs->front().child.pid);
    ReapDeviceProcesses(*devs);
    std::string expected;
    for (const std::string& e : sandbox::ChildEnvironment()) expected += e + '\0';
    EXPECT_EQ(env.find(sandbox::testing_util::kTestSecret), std::string::npos)
        << "the manager's VMM_TEST_SECRET reached the device process";
    EXPECT_EQ(env, expected);
  });
}

// device-rng may not write a regular file at all (RLIMIT_FSIZE 0): were the manager's
// stderr, a regular file, its own, every line it writes would fail with EFBIG. Its lines
// come through the manager instead, each prefixed with the role.
TEST(DeviceProcesses, RngLinesReachAManagerStderrThatIsARegularFile) {
  SKIP_UNLESS_SPAWN_WORKS();
  const std::string log = TempPath("stderr.log");
  pid_t w = fork();  // the manager: its stderr is the log file
  ASSERT_GE(w, 0);
  if (w == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(2);
    VmConfig cfg;
    cfg.rng = true;
    auto devs = StartDeviceProcesses(cfg);
    if (!devs) {
      std::fprintf(stderr, "start: %s\n", devs.error().ToString().c_str());
      _exit(3);
    }
    std::string problems = ReapDeviceProcesses(*devs);
    std::fprintf(stderr, "manager: done\n");
    _exit(problems.empty() ? 0 : 4);
  }
  int st = WaitStatus(w);
  const std::string text = ReadFile(log);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st << "\n" << text;
  const std::string landlock = LastLineWith(text, "vmm-device: landlock:");
  ASSERT_FALSE(landlock.empty()) << "the rng's landlock line was lost:\n" << text;
  EXPECT_EQ(landlock.rfind("vmm: device-rng rng0: vmm-device: landlock:", 0), 0u) << landlock;
  EXPECT_LT(text.find(landlock), text.find("manager: done")) << "forwarded after the reap";
}

}  // namespace
}  // namespace vmm
