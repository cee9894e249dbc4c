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
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm {
namespace {

namespace testing_util = sandbox::testing_util;
using testing_util::WaitStatus;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A real device process gets none of the manager's environment (sandbox::ChildEnvironment).
TEST(DeviceProcesses, RngProcessGetsNoneOfTheManagersEnvironment) {
  SKIP_UNLESS_SPAWN_WORKS();
  pid_t w = fork();  // setenv would change the test process's environment
  ASSERT_GE(w, 0);
  if (w == 0) {
    setenv("VMM_TEST_SECRET", "do-not-pass", 1);
    VmConfig cfg;
    cfg.rng = true;
    auto devs = StartDeviceProcesses(cfg);
    if (!devs) _exit(2);
    const std::string env = ReadFile("/proc/" + std::to_string(devs->front().pid) + "/environ");
    ReapDeviceProcesses(*devs);
    std::string expected;
    for (const std::string& e : sandbox::ChildEnvironment()) expected += e + '\0';
    if (env.find("VMM_TEST_SECRET") != std::string::npos) _exit(3);
    _exit(env == expected ? 0 : 4);
  }
  int st = WaitStatus(w);
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_NE(WEXITSTATUS(st), 3) << "the manager's VMM_TEST_SECRET reached the device process";
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

}  // namespace
}  // namespace vmm
