// The VM's cgroup (vmm/manager/cgroup.h): the parsers of mountinfo and /proc/self/cgroup, and
// VmCgroup against a temp dir that stands in for a delegated cgroup2 tree.
#include "vmm/manager/cgroup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/unit/common/temp_dir.h"

namespace vmm {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

const char kUuid[] = "0b4e61b2-7c1d-4e8f-9a0b-5f0c1a2b3c4d";

TEST(Cgroup2Mounts, FindsEveryCgroup2MountAndDecodesEscapes) {
  const char text[] =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
      "31 22 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "40 22 0:26 /svc /mnt/my\\040cg rw - cgroup2 cgroup2 rw";  // no final newline
  auto mounts = ParseCgroup2Mounts(text);
  ASSERT_TRUE(mounts.has_value()) << mounts.error().message();
  ASSERT_EQ(mounts->size(), 2u);
  EXPECT_EQ((*mounts)[0].root, "/");
  EXPECT_EQ((*mounts)[0].mount_point, "/sys/fs/cgroup");
  EXPECT_EQ((*mounts)[1].root, "/svc");
  EXPECT_EQ((*mounts)[1].mount_point, "/mnt/my cg");
  EXPECT_TRUE(ParseCgroup2Mounts("")->empty());
}

TEST(Cgroup2Mounts, RefusesWhatIsNotMountinfo) {
  for (const char* bad : {
           "garbage\n",
           "30 22 0:26 / /sys/fs/cgroup rw cgroup2 cgroup2 rw\n",         // no separator
           "30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2\n",          // a field short
           "x 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",        // id
           "30 22 026 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",        // device
           "30 22 0:26 / /sys/fs/cgroup\\04 rw - cgroup2 cgroup2 rw\n",   // short escape
           "30 22 0:26 / /sys/fs/cgroup\\000 rw - cgroup2 cgroup2 rw\n",  // NUL
           "30 22 0:26 / sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",        // relative
           "30 22 0:26 / /a  rw - cgroup2 cgroup2 rw\n",                  // two spaces
           "30 22 0:26 / /a\tb rw - cgroup2 cgroup2 rw\n",                // a raw tab
       }) {
    auto r = ParseCgroup2Mounts(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_NE(r.error().message().find("mountinfo line 1"), std::string::npos);
    }
  }
  EXPECT_FALSE(ParseCgroup2Mounts(std::string(kMaxMountinfoBytes + 1, '\n')).has_value());
}

TEST(OwnCgroup, ReadsTheV2Line) {
  EXPECT_EQ(*ParseOwnCgroup("0::/system.slice/vmm.service\n"), "/system.slice/vmm.service");
  EXPECT_EQ(*ParseOwnCgroup("12:pids:/user.slice\n1:name=systemd:/x\n0::/user.slice/a:b\n"),
            "/user.slice/a:b");
  EXPECT_EQ(*ParseOwnCgroup("0::/\n"), "/");
  auto v1 = ParseOwnCgroup("9:name=systemd:/\n8:pids:/\n");
  ASSERT_FALSE(v1.has_value());
  EXPECT_EQ(v1.error().kind(), ErrorKind::kNotFound);
  for (const char* bad : {"0::/a\n0::/b\n", "0::/a (deleted)\n", "0::/../../x\n", "0::a\n",
                          "0::/a//b\n", "0::/a/./b\n", "x::/a\n", "0:/a\n", "\n"}) {
    auto r = ParseOwnCgroup(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument) << bad;
  }
}

TEST(ControllerList, SplitsNamesStrictly) {
  EXPECT_EQ(*ParseControllerList("cpuset cpu io memory hugetlb pids rdma misc\n"),
            (std::vector<std::string>{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma",
                                      "misc"}));
  EXPECT_TRUE(ParseControllerList("\n")->empty());
  EXPECT_TRUE(ParseControllerList("")->empty());
  for (const char* bad : {"cpu  memory", " cpu", "cpu\nmemory\n", "CPU", "cpu,memory"}) {
    EXPECT_FALSE(ParseControllerList(bad).has_value()) << bad;
  }
}

TEST(CgroupDirectory, MapsAPathThroughTheMountThatShowsIt) {
  const std::vector<Cgroup2Mount> root = {{"/", "/sys/fs/cgroup"}};
  EXPECT_EQ(*CgroupDirectory(root, "/"), "/sys/fs/cgroup");
  EXPECT_EQ(*CgroupDirectory(root, "/a/b"), "/sys/fs/cgroup/a/b");
  const std::vector<Cgroup2Mount> bind = {{"/svc", "/mnt/cg/"}};
  EXPECT_EQ(*CgroupDirectory(bind, "/svc/x"), "/mnt/cg/x");
  EXPECT_EQ(*CgroupDirectory(bind, "/svc"), "/mnt/cg");
  EXPECT_FALSE(CgroupDirectory(bind, "/svcx").has_value());
  EXPECT_FALSE(CgroupDirectory(bind, "/").has_value());
}

TEST(CgroupMode, ParsesTheFlag) {
  EXPECT_EQ(*ParseCgroupMode("off"), CgroupMode::kOff);
  EXPECT_EQ(*ParseCgroupMode("auto"), CgroupMode::kAuto);
  EXPECT_EQ(*ParseCgroupMode("required"), CgroupMode::kRequired);
  EXPECT_FALSE(ParseCgroupMode("on").has_value());
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A delegated cgroup /svc on a cgroup2 mount at <tmp>/cg, in plain files: a new cgroup gets the
// interface files cgroupfs would give it, and rmdir removes them as cgroupfs does.
class FakeCgroupTree {
 public:
  explicit FakeCgroupTree(const std::string& controllers = "cpu memory pids\n") {
    own_ = dir_.path() + "/cg/svc";
    fs::create_directories(own_);
    WriteFile(dir_.path() + "/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 22 0:26 / " +
                                              dir_.path() + "/cg rw - cgroup2 cgroup2 rw\n");
    WriteFile(dir_.path() + "/cgroup", "1:name=systemd:/x\n0::/svc\n");
    for (const char* f : {"cgroup.procs", "cgroup.subtree_control"}) WriteFile(own_ + "/" + f, "");
    WriteFile(own_ + "/cgroup.controllers", controllers);
    host_.mountinfo = dir_.path() + "/mountinfo";
    host_.self_cgroup = dir_.path() + "/cgroup";
    host_.after_mkdir = [](const std::string& d) {
      for (const char* f :
           {"cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "cpu.max", "memory.max",
            "memory.swap.max", "memory.oom.group", "pids.max"}) {
        WriteFile(d + "/" + f, "");
      }
    };
    host_.before_rmdir = [](const std::string& d) {
      for (const auto& e : fs::directory_iterator(d)) fs::remove(e.path());
    };
  }
  const CgroupHost& host() const { return host_; }
  const std::string& own() const { return own_; }
  std::string vm() const { return own_ + "/vmm-" + kUuid; }

 private:
  TempDir dir_{"vmm-cgroup"};
  std::string own_;
  CgroupHost host_;
};

policy::CgroupLimits AllLimits() {
  policy::CgroupLimits l;
  l.cpu = policy::CgroupLimits::Cpu{150000, 100000};
  l.memory_max = 1ull << 30;
  l.pids_max = 24;
  return l;
}

TEST(VmCgroup, MakesTheVmsCgroupWithThePolicysLimitsAndRemovesIt) {
  FakeCgroupTree tree;
  {
    auto cg = VmCgroup::Create(tree.host(), kUuid, AllLimits());
    ASSERT_TRUE(cg.has_value()) << cg.error().ToString();
    EXPECT_EQ((*cg)->path(), std::string("/svc/vmm-") + kUuid);
    EXPECT_EQ((*cg)->directory(), tree.vm());
    EXPECT_GE((*cg)->fd(), 0);
    EXPECT_EQ(ReadText(tree.own() + "/cgroup.subtree_control"), "+cpu +memory +pids");
    EXPECT_EQ(ReadText(tree.vm() + "/cpu.max"), "150000 100000");
    EXPECT_EQ(ReadText(tree.vm() + "/memory.max"), "1073741824");
    EXPECT_EQ(ReadText(tree.vm() + "/memory.swap.max"), "0");
    EXPECT_EQ(ReadText(tree.vm() + "/memory.oom.group"), "1");
    EXPECT_EQ(ReadText(tree.vm() + "/pids.max"), "24");
    using Details = std::vector<std::pair<std::string, std::string>>;
    EXPECT_EQ((*cg)->AuditDetails(), (Details{{"cgroup", std::string("/svc/vmm-") + kUuid},
                                              {"cgroup_cpu_max", "150000 100000"},
                                              {"cgroup_memory_max", "1073741824"},
                                              {"cgroup_pids_max", "24"}}));
    EXPECT_TRUE(fs::is_directory(tree.vm()));
  }
  EXPECT_FALSE(fs::exists(tree.vm())) << "removed with the VmCgroup";
}

TEST(VmCgroup, EnablesOnlyTheControllersItsLimitsNeed) {
  FakeCgroupTree tree("pids\n");
  policy::CgroupLimits l;
  l.pids_max = 100;
  auto cg = VmCgroup::Create(tree.host(), kUuid, l);
  ASSERT_TRUE(cg.has_value()) << cg.error().ToString();
  EXPECT_EQ(ReadText(tree.own() + "/cgroup.subtree_control"), "+pids");
  EXPECT_EQ(ReadText(tree.vm() + "/pids.max"), "100");
  EXPECT_EQ(ReadText(tree.vm() + "/cpu.max"), "") << "no CPU limit: left alone";
}

TEST(VmCgroup, ReplacesAnEmptyCgroupLeftBehind) {
  FakeCgroupTree tree;
  fs::create_directory(tree.vm());
  tree.host().after_mkdir(tree.vm());
  WriteFile(tree.vm() + "/pids.max", "7");
  auto cg = VmCgroup::Create(tree.host(), kUuid, AllLimits());
  ASSERT_TRUE(cg.has_value()) << cg.error().ToString();
  EXPECT_EQ(ReadText(tree.vm() + "/pids.max"), "24");
}

TEST(VmCgroup, WithoutControllersIsNotDelegated) {
  // A cgroup v1 or hybrid host: the cgroup2 mount has no controllers (as this host's).
  FakeCgroupTree tree("hugetlb\n");
  auto cg = VmCgroup::Create(tree.host(), kUuid, AllLimits());
  ASSERT_FALSE(cg.has_value());
  EXPECT_EQ(cg.error().kind(), ErrorKind::kUnsupported);
  EXPECT_NE(cg.error().message().find(
                "has no cpu, memory, pids controllers (the host keeps them on cgroup v1"),
            std::string::npos)
      << cg.error().message();
  EXPECT_FALSE(fs::exists(tree.vm()));
}

TEST(VmCgroup, WithoutACgroup2MountIsNotDelegated) {
  FakeCgroupTree tree;
  CgroupHost host = tree.host();
  TempDir other("vmm-cgroup-v1");
  WriteFile(other.path() + "/mountinfo",
            "31 22 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw\n");
  host.mountinfo = other.path() + "/mountinfo";
  auto cg = VmCgroup::Create(host, kUuid, AllLimits());
  ASSERT_FALSE(cg.has_value());
  EXPECT_EQ(cg.error().kind(), ErrorKind::kUnsupported);
  EXPECT_NE(cg.error().message().find("no cgroup v2 hierarchy"), std::string::npos);
}

TEST(VmCgroup, RefusesAMalformedProcFile) {
  FakeCgroupTree tree;
  CgroupHost host = tree.host();
  TempDir other("vmm-cgroup-bad");
  WriteFile(other.path() + "/cgroup", "0::/../x\n");
  host.self_cgroup = other.path() + "/cgroup";
  auto cg = VmCgroup::Create(host, kUuid, AllLimits());
  ASSERT_FALSE(cg.has_value());
  EXPECT_EQ(cg.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(VmCgroup, SetUpFollowsTheMode) {
  FakeCgroupTree plain("hugetlb\n");
  std::string note;
  // auto on a host without delegation: no cgroup, one line saying why.
  auto none = SetUpVmCgroup(CgroupMode::kAuto, AllLimits(), kUuid, plain.host(), &note);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->get(), nullptr);
  EXPECT_NE(note.find("no cgroup limits for this VM: our cgroup /svc"), std::string::npos) << note;
  // required: the same host refuses the VM.
  auto refused = SetUpVmCgroup(CgroupMode::kRequired, AllLimits(), kUuid, plain.host(), &note);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("--cgroup required: "), std::string::npos);
  // required without limits in the policy.
  auto no_limits = SetUpVmCgroup(CgroupMode::kRequired, std::nullopt, kUuid, plain.host(), &note);
  ASSERT_FALSE(no_limits.has_value());
  EXPECT_NE(no_limits.error().message().find("sets no limits.cgroup"), std::string::npos);
  // off: nothing, and a note that the limits are ignored.
  FakeCgroupTree tree;
  auto off = SetUpVmCgroup(CgroupMode::kOff, AllLimits(), kUuid, tree.host(), &note);
  ASSERT_TRUE(off.has_value());
  EXPECT_EQ(off->get(), nullptr);
  EXPECT_NE(note.find("--cgroup off"), std::string::npos);
  EXPECT_FALSE(fs::exists(tree.vm()));
  // auto where delegated: the cgroup.
  auto made = SetUpVmCgroup(CgroupMode::kAuto, AllLimits(), kUuid, tree.host(), &note);
  ASSERT_TRUE(made.has_value()) << made.error().ToString();
  ASSERT_NE(made->get(), nullptr);
  EXPECT_NE(note.find("run in the cgroup /svc/vmm-"), std::string::npos) << note;
  EXPECT_NE(note.find("cpu_max 150000 100000, memory_max 1073741824, pids_max 24"),
            std::string::npos)
      << note;
}

}  // namespace
}  // namespace vmm
