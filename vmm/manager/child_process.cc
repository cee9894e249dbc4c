#include "vmm/manager/child_process.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>

#include "sandbox/seccomp_audit.h"

namespace vmm {

ChildExit DescribeExit(int pidfd) {
  ChildExit e;
  siginfo_t info{};
  if (waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) != 0) {
    e.text = "ended (status unavailable)";
    return e;
  }
  e.status = info.si_status;
  if (info.si_code == CLD_EXITED) {
    e.how = ChildExit::How::kExited;
    e.text = "exited with status " + std::to_string(info.si_status);
    return e;
  }
  e.how = ChildExit::How::kKilled;
  const char* name = sigabbrev_np(info.si_status);
  e.text = std::string("was killed by SIG") + (name ? name : std::to_string(info.si_status));
  if (info.si_status == SIGSYS) {
    if (auto name = sandbox::SeccompKilledSyscall(info.si_pid)) {
      e.text += ": its seccomp filter denied " + *name;
    } else {
      e.text += ": a system call outside its seccomp filter (the audit log names it)";
    }
  }
  return e;
}

bool WaitForExit(int pidfd, sandbox::ChildLog& log, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const long long left = std::clamp<long long>(
        std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now())
            .count(),
        0, INT_MAX);
    pollfd p[2] = {{pidfd, POLLIN, 0}, {log.fd(), POLLIN, 0}};
    const int n = poll(p, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (p[1].revents != 0) log.Forward();
    if (p[0].revents & POLLIN) return true;
    if (left == 0) return false;
  }
}

ChildExit ManagedChild::Reap() {
  if (!running()) {
    log.ForwardToEnd();
    ChildExit e;
    e.text = "already reaped";
    return e;
  }
  ChildExit e = DescribeExit(pidfd.get());
  log.ForwardToEnd();  // its last lines come before the line that says how it ended
  pid = -1;
  return e;
}

void ManagedChild::Signal(int sig) const {
  if (running()) (void)syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0);
}

ChildExit ManagedChild::Stop(int grace_ms) {
  bool killed = false;
  if (running() && !WaitForExit(pidfd.get(), log, grace_ms)) {
    Signal(SIGKILL);
    killed = true;
  }
  ChildExit e = Reap();
  e.killed_after_grace = killed;
  return e;
}

namespace {
std::string& SelinuxLevelStorage() {
  static std::string level = "s0";
  return level;
}
int g_child_cgroup_fd = -1;  // ChildCgroupScope's; the manager spawns from one thread only
}  // namespace

void SetChildSelinuxLevel(std::string level) { SelinuxLevelStorage() = std::move(level); }
const std::string& ChildSelinuxLevel() { return SelinuxLevelStorage(); }

ChildCgroupScope::ChildCgroupScope(int cgroup_fd) : previous_(g_child_cgroup_fd) {
  g_child_cgroup_fd = cgroup_fd;
}
ChildCgroupScope::~ChildCgroupScope() { g_child_cgroup_fd = previous_; }

Result<ManagedChild> SpawnManagedChild(sandbox::ConfineOptions o, const std::string& binary,
                                       const std::vector<std::string>& argv,
                                       const std::string& label) {
  if (o.cgroup_fd < 0) o.cgroup_fd = g_child_cgroup_fd;
  o.log = [label](const std::string& note) {
    std::fprintf(stderr, "vmm: %s: %s\n", label.c_str(), note.c_str());
  };
  o.selinux_level = ChildSelinuxLevel();
  ManagedChild child;
  ASSIGN_OR_RETURN(child.log, sandbox::ChildLog::Create("vmm: " + label + ": "));
  o.stderr_fd = child.log.write_end();
  auto pid = sandbox::SpawnRole(o, binary, argv);
  child.log.CloseWriteEnd();
  if (!pid) {
    child.log.ForwardToEnd();  // the child is gone: what it said before it failed
    return pid.error();
  }
  child.pid = *pid;
  child.pidfd.reset(static_cast<int>(syscall(SYS_pidfd_open, child.pid, 0)));
  if (!child.pidfd.valid()) {
    const int err = errno;
    kill(child.pid, SIGKILL);
    waitpid(child.pid, nullptr, 0);
    child.log.ForwardToEnd();
    return Error(ErrorKind::kSystem, "pidfd_open", err);
  }
  return child;
}

}  // namespace vmm
