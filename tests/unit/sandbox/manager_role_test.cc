// The manager's own filter (sandbox role "manager", ARCHITECTURE.md §1), loaded in a fresh
// child as `vmm run` loads it: what the manager still does after its confinement point works,
// and what it must never do again kills it with SIGSYS (one generated case per call).
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/common/temp_dir.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

using testing_util::Die;

constexpr int kApiSocketFd = 1003;  // where the tests put the "API socket"

void ApplyManagerFilter(int api_socket = kApiSocketFd) {
  auto policy = PolicyForRole(kManagerRole);
  if (!policy) Die(policy.error().ToString());
  testing_util::ApplyFilter(*policy, {{"api_socket", static_cast<uint64_t>(api_socket)}});
}

void Must(bool ok, const char* what) {
  if (!ok) Die(std::string(what) + ": " + std::strerror(errno));
}

// What the manager does after its confinement point, each through the fd it already holds:
// supervise a child (pidfd_send_signal, waitid), wait with poll, take SIGTERM on a signalfd, append
// to and read back the audit log (flock, pread64, fsync), accept on the API socket, remove it at
// the end, remove a directory as the cgroup's is (unlinkat AT_REMOVEDIR); and a new socket is
// refused with EACCES, not made. `dir` holds the other two; it is removed too (the
// death-test child's own TempDir never runs its destructor).
[[noreturn]] void ActAsTheManager(const std::string& dir) {
  const std::string sock_path = dir + "/api.sock";
  const std::string log_path = dir + "/audit.jsonl";
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path.c_str());
  Must(listener >= 0 && bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 &&
           listen(listener, 1) == 0 && dup2(listener, kApiSocketFd) == kApiSocketFd,
       "the API socket");
  const int log = open(log_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  Must(log >= 0, "the audit log");
  const pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  Must(pidfd >= 0, "pidfd_open");
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  Must(sigprocmask(SIG_BLOCK, &stop, nullptr) == 0, "sigprocmask");

  ApplyManagerFilter();

  const int sigfd = signalfd(-1, &stop, SFD_CLOEXEC);
  Must(sigfd >= 0, "signalfd4 with SFD_CLOEXEC");
  Must(flock(log, LOCK_EX) == 0, "flock of the audit log");
  Must(write(log, "{}\n", 3) == 3 && fsync(log) == 0 && fdatasync(log) == 0, "append");
  char back[3];
  Must(pread(log, back, sizeof(back), 0) == 3 && back[0] == '{', "pread64 of the log");
  Must(flock(log, LOCK_UN) == 0, "unlock");
  Must(accept4(kApiSocketFd, nullptr, nullptr, SOCK_CLOEXEC) < 0 && errno == EAGAIN,
       "accept4 on the API socket (none waiting)");
  Must(syscall(SYS_socket, AF_INET, SOCK_STREAM, 0) < 0 && errno == EACCES,
       "socket(AF_INET) refused with EACCES");
  Must(syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0) < 0 && errno == EACCES,
       "socket(AF_NETLINK) refused with EACCES");
  Must(syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0,
       "pidfd_send_signal to a child");
  pollfd p{pidfd, POLLIN, 0};
  Must(poll(&p, 1, 10000) == 1, "poll on the child's pidfd");
  siginfo_t si{};
  Must(waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &si, WEXITED) == 0 &&
           si.si_status == SIGKILL,
       "waitid through the pidfd");
  Must(unlink(sock_path.c_str()) == 0 && unlink(log_path.c_str()) == 0, "unlink");
  Must(unlinkat(AT_FDCWD, dir.c_str(), AT_REMOVEDIR) == 0, "unlinkat of a directory");
  _exit(0);
}

TEST(ManagerRole, WhatTheManagerDoesAfterConfinementWorksUnderItsFilter) {
  testing_util::UseThreadsafeDeathTests();
  vmm::testing_util::TempDir d("vmm-manager-role");
  EXPECT_EXIT(ActAsTheManager(d.path()), testing::ExitedWithCode(0), "");
}

struct Forbidden {
  std::string_view name;
  std::function<long()> call;
};

char* const kArgv[] = {const_cast<char*>("true"), nullptr};
char* const kEnvp[] = {nullptr};

// Harmless if a broken filter let them through (bad fds, bad paths, bad flags).
const std::vector<Forbidden>& ManagerForbidden() {
  static const auto* calls = new std::vector<Forbidden>{
      {"execve", [] { return syscall(SYS_execve, "/bin/true", kArgv, kEnvp); }},
      {"execveat", [] { return syscall(SYS_execveat, AT_FDCWD, "/bin/true", kArgv, kEnvp, 0); }},
      {"fork", [] { return syscall(SYS_fork); }},
      {"vfork_like_clone",
       [] { return syscall(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, nullptr, nullptr); }},
      {"clone_process",
       [] { return syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr); }},
      {"kill", [] { return syscall(SYS_kill, getppid(), 0); }},
      {"tgkill_other_process", [] { return syscall(SYS_tgkill, getppid(), getppid(), 0); }},
      {"ptrace", [] { return syscall(SYS_ptrace, PTRACE_PEEKDATA, getppid(), nullptr, nullptr); }},
      {"process_vm_readv",
       [] { return syscall(SYS_process_vm_readv, getppid(), nullptr, 0, nullptr, 0, 0); }},
      {"open", [] { return syscall(SYS_open, "/nonexistent-vmm/x", O_RDONLY); }},
      {"openat_write",
       [] {
         return syscall(SYS_openat, AT_FDCWD, "/nonexistent-vmm/x", O_WRONLY | O_CREAT, 0600);
       }},
      {"openat_rdonly", [] { return syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY); }},
      {"newfstatat_path",
       [] {
         struct stat st;
         return syscall(SYS_newfstatat, AT_FDCWD, "/etc/passwd", &st, 0);
       }},
      {"readlink",
       [] {
         char b[8];
         return syscall(SYS_readlink, "/proc/self/exe", b, sizeof(b));
       }},
      {"prctl_cap_ambient_raise",
       [] { return syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 63, 0, 0); }},
      {"openat_rdwr", [] { return syscall(SYS_openat, AT_FDCWD, "/nonexistent-vmm/x", O_RDWR); }},
      {"openat_append",
       [] { return syscall(SYS_openat, AT_FDCWD, "/nonexistent-vmm/x", O_RDONLY | O_APPEND); }},
      {"socketpair",
       [] {
         int sv[2];
         return syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv);
       }},
      {"connect", [] { return syscall(SYS_connect, -1, nullptr, 0); }},
      {"bind", [] { return syscall(SYS_bind, -1, nullptr, 0); }},
      {"listen", [] { return syscall(SYS_listen, -1, 0); }},
      {"accept4_other_fd", [] { return syscall(SYS_accept4, 1002, nullptr, nullptr, 0); }},
      {"ioctl_kvm_create_vm", [] { return syscall(SYS_ioctl, -1, KVM_CREATE_VM, 0); }},
      {"ioctl_tiocsti", [] { return syscall(SYS_ioctl, -1, TIOCSTI, nullptr); }},
      {"mount", [] { return syscall(SYS_mount, nullptr, nullptr, nullptr, 0, nullptr); }},
      {"unshare", [] { return syscall(SYS_unshare, 0); }},
      {"setns", [] { return syscall(SYS_setns, -1, 0); }},
      {"setresuid", [] { return syscall(SYS_setresuid, -1, -1, -1); }},
      {"setgroups", [] { return syscall(SYS_setgroups, 0, nullptr); }},
      {"prctl_set_dumpable", [] { return syscall(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0); }},
      {"bpf", [] { return syscall(SYS_bpf, -1, nullptr, 0); }},
      {"init_module", [] { return syscall(SYS_init_module, nullptr, 0, ""); }},
      {"perf_event_open", [] { return syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
      {"memfd_create", [] { return syscall(SYS_memfd_create, "vmm", MFD_CLOEXEC); }},
      {"mprotect_exec",
       [] {
         alignas(4096) static char page[4096];
         return syscall(SYS_mprotect, page, 4096, PROT_READ | PROT_EXEC);
       }},
      {"pidfd_open", [] { return syscall(SYS_pidfd_open, getppid(), 0); }},
      {"pwrite64", [] { return syscall(SYS_pwrite64, -1, "", 0, 0); }},
      {"rmdir", [] { return syscall(SYS_rmdir, "/nonexistent-vmm"); }},
      {"renameat",
       [] { return syscall(SYS_renameat, AT_FDCWD, "/nonexistent-a", AT_FDCWD, "/b"); }},
  };
  return *calls;
}

class ManagerRoleDeathTest : public testing::TestWithParam<const Forbidden*> {};

TEST_P(ManagerRoleDeathTest, KillsTheManagerWithSigsys) {
  testing_util::UseThreadsafeDeathTests();
  const Forbidden& f = *GetParam();
  EXPECT_EXIT(
      {
        ApplyManagerFilter();
        f.call();
        _exit(0);
      },
      testing::KilledBySignal(SIGSYS), "")
      << "the manager's filter let " << f.name << " through";
}

std::vector<const Forbidden*> AllForbidden() {
  std::vector<const Forbidden*> out;
  for (const Forbidden& f : ManagerForbidden()) out.push_back(&f);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Manager, ManagerRoleDeathTest, testing::ValuesIn(AllForbidden()),
                         [](const testing::TestParamInfo<const Forbidden*>& info) {
                           return std::string(info.param->name);
                         });

}  // namespace
}  // namespace vmm::sandbox
