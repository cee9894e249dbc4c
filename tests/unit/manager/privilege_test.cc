// The manager's Landlock domain (ARCHITECTURE.md §2 step 5), applied in a forked child as
// ConfineManager applies it: removals beneath the directories it names work, every other file
// operation by path is refused with EACCES, and the children it started before still take its
// signals. Skipped where the kernel has no Landlock.
#include "vmm/manager/privilege.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "base/unique_fd.h"
#include "sandbox/landlock.h"
#include "tests/unit/common/in_child.h"
#include "tests/unit/common/temp_dir.h"
#include "vmm/manager/cgroup.h"

namespace vmm {
namespace {

using testing_util::InChild;
using testing_util::TempDir;

UniqueFd OpenPath(const std::string& dir) {
  return UniqueFd(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

void Touch(const std::string& path) { std::ofstream(path) << "x"; }

// The errno of a call that returned -1, or 0 when it succeeded.
int ErrnoOf(long r) { return r == 0 ? 0 : errno; }

// In the calling (child) process: no_new_privs and the manager's ruleset for `c`.
void Restrict(int abi, const ManagerConfinement& c) {
  ASSERT_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
  auto note = RestrictManagerFilesystem(abi, c);
  ASSERT_TRUE(note.has_value()) << note.error().ToString();
  if (abi >= 6) {
    EXPECT_NE(note->find("signals not scoped"), std::string::npos) << *note;
  }
}

TEST(ManagerLandlock, RemovesFilesOnlyBeneathItsDirectoriesAndNothingElse) {
  auto abi = sandbox::LandlockAbi();
  if (!abi) GTEST_SKIP() << "needs Landlock: " << abi.error().ToString();
  TempDir d("vmm-manager-landlock");
  for (const char* dir :
       {"/api", "/api/sub", "/cg", "/cg/vmm-1", "/cg/vmm-2", "/other", "/other/sub"}) {
    ASSERT_EQ(mkdir((d.path() + dir).c_str(), 0700), 0) << dir;
  }
  for (const char* file : {"/api/api.sock", "/api/sub/f", "/api/keep", "/other/f", "/cg/f"}) {
    Touch(d.path() + file);
  }
  const int held = open(d.File("other/f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(held, 0);
  UniqueFd api = OpenPath(d.File("api")), cg = OpenPath(d.File("cg"));
  ASSERT_TRUE(api.valid() && cg.valid());

  InChild([&] {
    Restrict(
        *abi,
        {.api_socket = -1, .remove_files_beneath = {api.get()}, .remove_dirs_beneath = {cg.get()}});
    // Granted: files beneath the API socket's directory, directories beneath the cgroup's
    // parent (through the held fd, as VmCgroup::Remove does, and by path).
    EXPECT_EQ(ErrnoOf(unlinkat(api.get(), "api.sock", 0)), 0);
    EXPECT_EQ(ErrnoOf(unlink(d.File("api/sub/f").c_str())), 0);
    EXPECT_EQ(ErrnoOf(unlinkat(cg.get(), "vmm-1", AT_REMOVEDIR)), 0);
    EXPECT_EQ(ErrnoOf(rmdir(d.File("cg/vmm-2").c_str())), 0);
    // Refused: the same kind of removal elsewhere, the other kind of removal in either
    // directory, making anything, opening anything.
    EXPECT_EQ(ErrnoOf(unlink(d.File("other/f").c_str())), EACCES);
    EXPECT_EQ(ErrnoOf(rmdir(d.File("other/sub").c_str())), EACCES);
    EXPECT_EQ(ErrnoOf(rmdir(d.File("api/sub").c_str())), EACCES);
    EXPECT_EQ(ErrnoOf(unlinkat(cg.get(), "f", 0)), EACCES);
    EXPECT_EQ(ErrnoOf(rename(d.File("api/keep").c_str(), d.File("api/moved").c_str())), EACCES);
    EXPECT_EQ(ErrnoOf(mkdirat(cg.get(), "vmm-3", 0700)), EACCES);
    EXPECT_EQ(ErrnoOf(mknodat(api.get(), "fifo", S_IFIFO | 0600, 0)), EACCES);
    EXPECT_EQ(ErrnoOf(symlinkat("x", api.get(), "link")), EACCES);
    EXPECT_EQ(open(d.File("api/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600), -1);
    EXPECT_EQ(errno, EACCES);
    EXPECT_EQ(open(d.File("api/keep").c_str(), O_RDONLY | O_CLOEXEC), -1);
    EXPECT_EQ(errno, EACCES);
    EXPECT_EQ(open("/etc/passwd", O_RDONLY | O_CLOEXEC), -1);
    EXPECT_EQ(errno, EACCES);
    // An fd opened before keeps its access.
    EXPECT_EQ(write(held, "y", 1), 1);
  });
  // What the child removed is gone; what it was refused is still there.
  for (const char* gone : {"api/api.sock", "api/sub/f", "cg/vmm-1", "cg/vmm-2"}) {
    EXPECT_NE(access(d.File(gone).c_str(), F_OK), 0) << gone;
  }
  for (const char* kept : {"other/f", "other/sub", "api/sub", "api/keep", "cg/f"}) {
    EXPECT_EQ(access(d.File(kept).c_str(), F_OK), 0) << kept;
  }
  close(held);
}

TEST(ManagerLandlock, ChildrenStartedBeforeStillTakeItsSignals) {
  auto abi = sandbox::LandlockAbi();
  if (!abi) GTEST_SKIP() << "needs Landlock: " << abi.error().ToString();
  InChild([&] {
    // Like the manager's children: started first, each in a Landlock domain of its own.
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
      (void)sandbox::RestrictFilesystem(*abi, {});
      alarm(30);  // never outlives a broken test
      pause();
      _exit(0);
    }
    UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, child, 0)));
    ASSERT_TRUE(pidfd.valid());
    Restrict(*abi, {});
    EXPECT_EQ(ErrnoOf(syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0)), 0)
        << "a manager whose signals are scoped could not stop its children";
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  });
}

// The cgroup directory of this process on its cgroup2 mount, or "" when there is none.
std::string OwnCgroupDirectory() {
  std::ifstream mi("/proc/self/mountinfo"), pc("/proc/self/cgroup");
  const std::string mountinfo(std::istreambuf_iterator<char>(mi), {});
  const std::string proc_cgroup(std::istreambuf_iterator<char>(pc), {});
  auto mounts = ParseCgroup2Mounts(mountinfo);
  auto own = ParseOwnCgroup(proc_cgroup);
  if (!mounts || !own) return "";
  auto dir = CgroupDirectory(*mounts, *own);
  return dir ? *dir : "";
}

// cgroupfs (kernfs) goes through the same Landlock hook as any filesystem: the VM's cgroup is
// removed through its parent's fd only because the parent is granted REMOVE_DIR.
TEST(ManagerLandlock, RemovesACgroupThroughItsParentOnlyWhenGranted) {
  auto abi = sandbox::LandlockAbi();
  if (!abi) GTEST_SKIP() << "needs Landlock: " << abi.error().ToString();
  const std::string own = OwnCgroupDirectory();
  if (own.empty()) GTEST_SKIP() << "no cgroup2 mount shows this process's cgroup";
  UniqueFd parent(open(own.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(parent.valid()) << own;
  const std::string name = "vmm-landlock-test-" + std::to_string(getpid());
  if (mkdirat(parent.get(), name.c_str(), 0755) != 0) {
    GTEST_SKIP() << "cannot make a cgroup in " << own << ": " << std::strerror(errno);
  }
  InChild([&] {
    Restrict(*abi, {});  // no grant
    EXPECT_EQ(ErrnoOf(unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR)), EACCES);
  });
  EXPECT_EQ(faccessat(parent.get(), name.c_str(), F_OK, 0), 0) << "removed without a grant";
  InChild([&] {
    Restrict(*abi,
             {.api_socket = -1, .remove_files_beneath = {}, .remove_dirs_beneath = {parent.get()}});
    EXPECT_EQ(ErrnoOf(unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR)), 0);
  });
  if (faccessat(parent.get(), name.c_str(), F_OK, 0) == 0) {
    ADD_FAILURE() << "the granted removal left " << own << "/" << name;
    unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR);
  }
}

}  // namespace
}  // namespace vmm
