// The AppArmor exec profile SpawnRole sets in its child (ARCHITECTURE.md "AppArmor"): only plain
// names are written, and a profile the kernel cannot switch to fails the spawn with a
// message naming it, whether AppArmor is on here or not.
#include "sandbox/apparmor.h"

#include <gtest/gtest.h>

#include "sandbox/confine.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

using testing_util::OptionsFor;

TEST(SandboxAppArmor, PlainNamesOnly) {
  EXPECT_TRUE(IsPlainAppArmorName("vmm-0123abcd-blk0"));
  EXPECT_TRUE(IsPlainAppArmorName("vmm_device.v2"));
  for (const char* bad :
       {"", "-x", ".x", "a b", "a\nb", "a//b", "a/b", "a:b", "a*", "\"a\"", "exec x"}) {
    EXPECT_FALSE(IsPlainAppArmorName(bad)) << bad;
  }
  EXPECT_FALSE(IsPlainAppArmorName(std::string(129, 'a')));
  EXPECT_TRUE(IsPlainAppArmorName(std::string(128, 'a')));
}

TEST(SandboxAppArmor, RefusesANameThatIsNotPlainBeforeWritingAnything) {
  auto r = SetAppArmorExecProfile("vmm-x\nexec unconfined");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
}

// No host has this profile: without AppArmor the attribute write is refused, with it the
// kernel answers ENOENT. Either way the child must not be exec'd.
TEST(SandboxAppArmor, SpawnRoleFailsWhenTheProfileCannotBeSet) {
  SKIP_UNLESS_SPAWN_WORKS();
  ConfineOptions o = OptionsFor("device", {}, -1);
  o.apparmor_profile = "vmm-no-such-profile-0";
  auto pid = SpawnRole(o, "/bin/true", {"true"});
  ASSERT_FALSE(pid.has_value()) << "spawned pid " << *pid;
  EXPECT_NE(pid.error().ToString().find("apparmor"), std::string::npos) << pid.error().ToString();
  EXPECT_NE(pid.error().ToString().find("vmm-no-such-profile-0"), std::string::npos)
      << pid.error().ToString();
}

TEST(SandboxAppArmor, SpawnRoleWithoutAProfileDoesNotTouchAppArmor) {
  SKIP_UNLESS_SPAWN_WORKS();
  ConfineOptions o = OptionsFor("device", {}, -1);
  std::vector<std::string> notes;
  o.log = [&](const std::string& n) { notes.push_back(n); };
  auto pid = SpawnRole(o, "/bin/true", {"true"});
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
  EXPECT_EQ(testing_util::WaitStatus(*pid), 0);
  for (const std::string& n : notes) EXPECT_EQ(n.find("apparmor"), std::string::npos) << n;
}

}  // namespace
}  // namespace vmm::sandbox
