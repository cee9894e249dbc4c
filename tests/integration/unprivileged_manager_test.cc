// The manager without root (ARCHITECTURE.md §1, README "Running without root"): `vmm run`
// started by an ordinary user in the kvm group boots the test guest, with a disk, the
// entropy device and a persistent vTPM, to PASS; its children get user namespaces. Needs
// /dev/kvm, root (to become that user) and setpriv.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/background_vm.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/common/temp_dir.h"

namespace vmm::testing {
namespace {

constexpr uid_t kUser = 65534;  // nobody: a uid with no files of its own

// Why the test cannot run as `kUser` in the kvm group here, or "" when it can.
std::string CannotRunUnprivileged() {
  if (!HaveKvm()) return "needs /dev/kvm (absent or not accessible on this host)";
  if (geteuid() != 0) return "needs root to act as another uid";
  if (access("/usr/bin/setpriv", X_OK) != 0) return "needs setpriv (util-linux)";
  const group* kvm = getgrnam("kvm");
  struct stat st {};
  if (kvm == nullptr || stat("/dev/kvm", &st) != 0 || st.st_gid != kvm->gr_gid ||
      (st.st_mode & 060) != 060) {
    return "/dev/kvm is not read-write for a group named kvm on this host";
  }
  return "";
}

// argv that runs `args` as kUser with the kvm group as its only supplementary group, no
// capabilities and HOME in `home`.
std::vector<std::string> AsKvmUser(const std::string& home, std::vector<std::string> args) {
  const std::string kvm_gid = std::to_string(getgrnam("kvm")->gr_gid);
  std::vector<std::string> argv = {"/usr/bin/env",
                                   "HOME=" + home,
                                   "/usr/bin/setpriv",
                                   "--reuid=" + std::to_string(kUser),
                                   "--regid=" + std::to_string(kUser),
                                   "--groups=" + kvm_gid,
                                   "--inh-caps=-all",
                                   "--bounding-set=-all"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

TEST(UnprivilegedManagerKvm, TestGuestPassesStartedByAUserInTheKvmGroup) {
  if (std::string why = CannotRunUnprivileged(); !why.empty()) GTEST_SKIP() << why;
  const std::string vmm = BinDir() + "/vmm";
  // The build tree must be readable by that user (it is not under a 0700 home, say).
  ProcessResult version = RunProcess(AsKvmUser("/", {vmm, "--version"}), 30);
  if (version.exit_code != 0) {
    GTEST_SKIP() << "uid " << kUser << " cannot run " << vmm << ": " << version.err;
  }
  testing_util::TempDir d("vmm-unpriv");
  ASSERT_EQ(chown(d.path().c_str(), kUser, kUser), 0);
  { std::ofstream(d.File("disk.img"), std::ios::binary) << std::string(1 << 20, '\0'); }
  ASSERT_EQ(chown(d.File("disk.img").c_str(), kUser, kUser), 0);
  ProcessResult r = RunProcess(
      AsKvmUser(d.path(), {vmm, "run", "--kernel", BinDir() + "/testguest.elf", "--cpus", "2",
                           "--memory", "256M", "--disk", "path=" + d.File("disk.img"), "--rng",
                           "--tpm", "state=" + d.File("vtpm") + ",key=" + d.File("vtpm.key"),
                           "--cmdline", "expect_cpus=2 expect_virtio=blk,rng expect_tpm=crb"}),
      180);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("testguest: result PASS"), std::string::npos) << r.out << r.err;
  // The default audit log is the user's own ($HOME/.local/state/vmm), and its records name it.
  const std::string log = ReadText(d.File(".local/state/vmm/audit.jsonl"));
  EXPECT_NE(log.find("\"uid\":" + std::to_string(kUser)), std::string::npos) << log;
  // The vTPM's state is the user's.
  struct stat st {};
  ASSERT_EQ(stat(d.File("vtpm").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUser);
}

// The lines of /proc/PID/status named in `keys`, "Key:\tvalue" -> {Key, value}.
std::map<std::string, std::string> ProcStatus(pid_t pid) {
  std::map<std::string, std::string> out;
  std::istringstream lines(ReadText("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(lines, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = value;
  }
  return out;
}

// A root-started manager becomes --user before it starts any child, with no capability left
// and no way to gain one, and runs under its own seccomp filter, while the VM runs (read from /proc
// while the guest lingers); the test guest still passes with a disk, rng and a persistent vTPM
// opened as root, and root still has the API.
TEST(UnprivilegedManagerKvm, RootStartedManagerDropsToItsUserWithNoCapabilities) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the test is about what root drops";
  if (getpwuid(kUser) == nullptr) GTEST_SKIP() << "no user with uid " << kUser;
  const std::string user = getpwuid(kUser)->pw_name;
  testing_util::TempDir d("vmm-drop");
  ASSERT_EQ(chmod(d.path().c_str(), 0711), 0);  // the child binaries' user passes through it
  { std::ofstream(d.File("disk.img"), std::ios::binary) << std::string(1 << 20, '\0'); }
  ASSERT_EQ(chmod(d.File("disk.img").c_str(), 0600), 0);  // root's: opened before the drop
  BackgroundVm vm({"--user", user, "--kernel", BinDir() + "/testguest.elf", "--disk",
                   "path=" + d.File("disk.img"), "--rng", "--tpm",
                   "state=" + d.File("vtpm") + ",key=" + d.File("vtpm.key"), "--api-socket",
                   d.File("api.sock"), "--audit-log", d.File("audit.jsonl"), "--cmdline",
                   "expect_virtio=blk,rng expect_tpm=crb linger=300"},
                  d.File("serial.txt"), d.File("vmm.err"));
  ASSERT_TRUE(vm.started());
  std::string serial = vm.WaitForConsole(d.File("serial.txt"), "testguest: lingering");
  ASSERT_NE(serial.find("testguest: lingering"), std::string::npos)
      << serial << ReadText(d.File("vmm.err"));
  EXPECT_NE(serial.find("testguest: result PASS"), std::string::npos) << serial;
  const std::map<std::string, std::string> st = ProcStatus(vm.pid());
  const std::string uid = std::to_string(kUser);
  EXPECT_EQ(st.at("Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(st.at(set), "0000000000000000") << set;
  }
  EXPECT_EQ(st.at("NoNewPrivs"), "1");
  // Its own seccomp filter (role "manager") is loaded: mode 2 (filter), at least that one.
  EXPECT_EQ(st.at("Seccomp"), "2");
  ASSERT_EQ(st.count("Seccomp_filters"), 1u) << "a kernel older than 5.9 does not show it";
  EXPECT_GE(std::stoi(st.at("Seccomp_filters")), 1);
  // Root, who started it, still has the API; the VM stops through it.
  ProcessResult down =
      RunProcess({BinDir() + "/vmm", "ctl", "--api-socket", d.File("api.sock"), "shutdown"}, 30);
  EXPECT_EQ(down.exit_code, 0) << down.err;
  EXPECT_EQ(vm.Wait(120), 0) << ReadText(d.File("vmm.err"));
  struct stat sd {};
  ASSERT_EQ(stat(d.File("vtpm").c_str(), &sd), 0);
  EXPECT_EQ(sd.st_uid, kUser) << "the vTPM state directory made for the manager's user";
}

// --user naming no user is refused before anything starts; without root, --user cannot name
// another user.
TEST(UnprivilegedManager, UnknownOrForeignUserIsRefused) {
  ProcessResult r = RunVmm({"--user", "no-such-user-vmm", "--kernel", BinDir() + "/testguest.elf"});
  if (geteuid() == 0) {
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--user 'no-such-user-vmm': no such user"), std::string::npos) << r.err;
  } else {
    EXPECT_EQ(r.exit_code, 2) << r.err;
  }
}

// A launch policy's cgroup limits with --user: `--cgroup required` refuses (exit 2) naming why,
// rather than failing later when the user cannot place the children in the cgroup; no child
// starts, so no /dev/kvm is needed.
TEST(UnprivilegedManager, CgroupLimitsWithUserAreRefusedWhenRequired) {
  if (geteuid() != 0) GTEST_SKIP() << "--user is for a manager started as root";
  testing_util::TempDir d("vmm-drop-cgroup");
  ProcessResult init = RunProcess({BinDir() + "/vmm", "policy", "init", "--kernel",
                                   BinDir() + "/testguest.elf", "--out", d.File("policy.json")},
                                  60);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  ProcessResult r =
      RunVmm({"--user", "nobody", "--policy", d.File("policy.json"), "--cgroup", "required",
              "--kernel", BinDir() + "/testguest.elf", "--audit-log", d.File("audit.jsonl")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--cgroup required: cgroup limits not with --user nobody"),
            std::string::npos)
      << r.err;
}

// The manager's own filter is printable like a role's: kill by default, and no rule for
// execve, ptrace, open for writing or new sockets.
TEST(UnprivilegedManager, SandboxShowManagerPrintsItsFilter) {
  ProcessResult r = RunProcess({BinDir() + "/vmm", "sandbox", "show", "manager"}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("# policy manager: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("any other syscall: KILL_PROCESS"), std::string::npos) << r.out;
  for (const char* absent : {"allow  execve ", "allow  ptrace ", "allow  socket ",
                             "allow  connect ", "allow  ioctl ", "allow  setuid "}) {
    EXPECT_EQ(r.out.find(absent), std::string::npos) << absent;
  }
  EXPECT_NE(r.out.find("errno  socket"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vmm::testing
