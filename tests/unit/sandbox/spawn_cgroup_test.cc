// ConfineOptions::cgroup_fd: SpawnConfined clones the child with clone3(CLONE_INTO_CGROUP), and
// a descriptor that is not a cgroup v2 directory is the spawn's error, not a child outside it.
// (The child in a real cgroup is checked in nested KVM: CgroupKvm in tests/integration.)
#include <fcntl.h>
#include <unistd.h>

#include "sandbox/confine.h"
#include "tests/unit/common/temp_dir.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

TEST(SandboxSpawn, IntoAFileThatIsNoCgroupFailsNamingCloneIntoCgroup) {
  SKIP_UNLESS_SPAWN_WORKS();
  vmm::testing_util::TempDir dir("vmm-not-a-cgroup");
  ConfineOptions o = testing_util::OptionsFor("device-rng", {}, -1);
  o.cgroup_fd = dir.fd();
  auto pid = SpawnConfined(o, [] { return 0; });
  ASSERT_FALSE(pid.has_value()) << "a child was started outside any cgroup";
  EXPECT_NE(pid.error().message().find("CLONE_INTO_CGROUP"), std::string::npos)
      << pid.error().ToString();
  EXPECT_EQ(pid.error().sys_errno(), EBADF) << pid.error().ToString();
}

}  // namespace
}  // namespace vmm::sandbox
