// The manager without root (ARCHITECTURE.md §1, README "Running without root"): `vmm run`
// started by an ordinary user in the kvm group boots the test guest, with a disk, the
// entropy device and a persistent vTPM, to PASS; its children get user namespaces. Needs
// /dev/kvm, root (to become that user) and setpriv.
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>
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

}  // namespace
}  // namespace vmm::testing
