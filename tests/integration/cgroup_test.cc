// The VM's cgroup v2 limits from the launch policy (ARCHITECTURE.md §9, vmm/manager/cgroup.h),
// end to end: `vmm run --cgroup required` with a policy carrying limits.cgroup; while the test
// guest lingers, every child of vmm is in the cgroup vmm-UUID and its files hold the policy's
// limits; the start's audit record names them; the cgroup is gone once the VM stopped.
// Needs /dev/kvm and a cgroup2 hierarchy with the cpu, memory and pids controllers in our own
// cgroup, which must be its root (the nested-KVM guest mounts one; cgroup v1 hosts skip).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/background_vm.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/common/temp_dir.h"
#include "vmm/manager/cgroup.h"

namespace vmm::testing {
namespace {

constexpr char kUuid[] = "c9a1b2d3-4e5f-4a6b-8c7d-0e1f2a3b4c5d";

// The directory of our own cgroup if vmm, started by us, can make cgroups with limits below it;
// otherwise "" and `why`.
std::string DelegatedCgroup(std::string* why) {
  auto mounts = ParseCgroup2Mounts(ReadText("/proc/self/mountinfo"));
  auto own = ParseOwnCgroup(ReadText("/proc/self/cgroup"));
  if (!mounts || mounts->empty()) return *why = "no cgroup2 hierarchy is mounted", "";
  if (!own) return *why = own.error().message(), "";
  auto dir = CgroupDirectory(*mounts, *own);
  if (!dir) return *why = dir.error().message(), "";
  auto controllers = ParseControllerList(ReadText(*dir + "/cgroup.controllers"));
  for (const char* c : {"cpu", "memory", "pids"}) {
    if (!controllers ||
        std::find(controllers->begin(), controllers->end(), c) == controllers->end()) {
      return *why = "the cgroup2 hierarchy at " + *dir + " has no " + c +
                    " controller (cgroup v1 or hybrid host)",
             "";
    }
  }
  if (access((*dir + "/cgroup.subtree_control").c_str(), W_OK) != 0) {
    return *why = *dir + " is not writable (not delegated to us)", "";
  }
  if (*own != "/") {
    return *why = "our cgroup " + *own +
                  " is not the root: vmm cannot pass controllers down while this test shares it",
           "";
  }
  return *dir;
}

// The pids whose parent is `parent` (from /proc/PID/stat).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  while (dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0) continue;
    const std::string stat = ReadText("/proc/" + std::string(e->d_name) + "/stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      out.push_back(pid);
    }
  }
  closedir(proc);
  return out;
}

TEST(CgroupKvm, TheVmsProcessesRunInItsCgroupWithThePolicysLimits) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  std::string why;
  const std::string root = DelegatedCgroup(&why);
  if (root.empty()) GTEST_SKIP() << "needs a delegated cgroup v2 with controllers: " << why;

  testing_util::TempDir d("vmm-cgroup-vm");
  const std::string vmm = BinDir() + "/vmm";
  const std::vector<std::string> vm = {"--kernel",  BinDir() + "/testguest.elf",
                                       "--cmdline", "linger=300",
                                       "--memory",  "128M",
                                       "--tpm",     "ephemeral",
                                       "--rng"};
  std::vector<std::string> init = {vmm, "policy", "init", "--out", d.File("policy.json")};
  init.insert(init.end(), vm.begin(), vm.end());
  ProcessResult made = RunProcess(init, 60);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  nlohmann::json policy = nlohmann::json::parse(ReadText(d.File("policy.json")));
  policy["limits"]["cgroup"] = {
      {"cpu_max", "50000 100000"}, {"memory_max", "448M"}, {"pids_max", 40}};
  std::ofstream(d.File("cgroup.json")) << policy.dump(2);

  std::vector<std::string> run = vm;
  run.insert(run.end(), {"--policy", d.File("cgroup.json"), "--cgroup", "required", "--uuid", kUuid,
                         "--audit-log", d.File("audit.jsonl")});
  BackgroundVm guest(run, d.File("serial.txt"), d.File("vmm.err"));
  std::string serial = guest.WaitForConsole(d.File("serial.txt"), "testguest: lingering");
  ASSERT_NE(serial.find("testguest: lingering"), std::string::npos)
      << serial << ReadText(d.File("vmm.err"));

  const std::string cg = root + (root.ends_with('/') ? "" : "/") + "vmm-" + kUuid;
  const std::string expected = "0::/vmm-" + std::string(kUuid) + "\n";
  EXPECT_EQ(ReadText(cg + "/cpu.max"), "50000 100000\n");
  EXPECT_EQ(ReadText(cg + "/memory.max"), std::to_string(448ull << 20) + "\n");
  EXPECT_EQ(ReadText(cg + "/pids.max"), "40\n");
  struct stat st;
  if (stat((cg + "/memory.swap.max").c_str(), &st) == 0) {
    EXPECT_EQ(ReadText(cg + "/memory.swap.max"), "0\n");
  }
  // Every child of vmm (the VM process, the vTPM, the rng device) is in the VM's cgroup; vmm
  // itself is not.
  const std::vector<pid_t> children = ChildrenOf(guest.pid());
  EXPECT_GE(children.size(), 3u) << "vcpu, vtpm and rng";
  for (pid_t c : children) {
    EXPECT_EQ(ReadText("/proc/" + std::to_string(c) + "/cgroup"), expected) << "child " << c;
  }
  EXPECT_NE(ReadText("/proc/" + std::to_string(guest.pid()) + "/cgroup"), expected);
  const std::string procs = ReadText(cg + "/cgroup.procs");
  for (pid_t c : children) {
    EXPECT_NE(procs.find(std::to_string(c) + "\n"), std::string::npos) << procs;
  }
  // What the limits leave: the VM's memory and tasks as it runs (reported, not asserted).
  std::printf("cgroup %s: memory.current %s", cg.c_str(), ReadText(cg + "/memory.current").c_str());
  std::printf("cgroup %s: memory.peak %s", cg.c_str(), ReadText(cg + "/memory.peak").c_str());
  std::printf("cgroup %s: pids.current %s", cg.c_str(), ReadText(cg + "/pids.current").c_str());

  const std::string err = ReadText(d.File("vmm.err"));
  EXPECT_NE(
      err.find("vmm: cgroup: the VM's processes run in the cgroup /vmm-" + std::string(kUuid) +
               " (cpu_max 50000 100000, memory_max 469762048, pids_max 40)"),
      std::string::npos)
      << err;
  const std::string audit = ReadText(d.File("audit.jsonl"));
  EXPECT_NE(audit.find("[\"cgroup\",\"/vmm-" + std::string(kUuid) + "\"]"), std::string::npos)
      << audit;
  EXPECT_NE(audit.find("[\"cgroup_memory_max\",\"469762048\"]"), std::string::npos) << audit;

  guest.Stop();
  EXPECT_NE(stat(cg.c_str(), &st), 0) << cg << " is still there after the VM stopped";
}

}  // namespace
}  // namespace vmm::testing
