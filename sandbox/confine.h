// Confinement of a VMM child process: namespaces, empty root, limits, no privileges,
// Landlock, seccomp. Applied by the process to itself before it reads a guest byte.
//
//   ConfineOptions o{.role = "device-rng", .keep_fds = {sock}};
//   ASSIGN_OR_RETURN(pid_t pid, SpawnConfined(o, [&] { return RngMain(sock); }));  // caller waits
//
// Two ways to start a role; both confine before any guest input is read:
//
//  1. Exec first (what the manager does, and what ARCHITECTURE.md §1 asks for so that SELinux
//     moves the role into its own domain at exec and each binary carries only its code):
//       parent:  SpawnRole(o, "/usr/libexec/vmm-device-rng", {"vmm-device-rng", "--sock=3"})
//                  clone into a new pid (+user) namespace, PR_SET_PDEATHSIG, close all but
//                  keep_fds, setexeccon(role's context), execve with ChildEnvironment().
//       child:   main() { Confine(o); ... }   as its first act, before reading any fd.
//     No role policy allows execve, and none needs to: the exec happens before the filter.
//
//  2. Confine, then run a function (roles linked into one binary; the tests):
//       SpawnConfined(o, body): clone into new namespaces, Confine(o), then body().
//     To exec after confining, the policy would have to allow execveat on a kept fd
//     (AllowRisky, with AT_EMPTY_PATH), Landlock would have to grant EXECUTE on it and the
//     binary would have to be static (the empty root holds no ld.so): possible, not used.
//
// Order of Confine (each failure is an Error naming its step):
//   checks (policy, rlimits, fds, threads) -> PR_SET_PDEATHSIG -> namespaces (mount, ipc,
//   uts, net; pid and user come from the spawner's clone) -> close fds not kept ->
//   pivot_root into an empty read-only tmpfs -> rlimits -> drop all capabilities and the
//   bounding set -> PR_SET_NO_NEW_PRIVS -> Landlock -> SELinux (report) -> seccomp.
// SELinux is reported before seccomp rather than after: nothing is applied at that point
// (the exec context only acts at execve, i.e. in SpawnRole), and the filter comes last
// because after it the process can make no syscall outside its role.
//
// SpawnConfined/SpawnRole use a raw clone(CLONE_NEWPID) (a pid namespace takes effect only
// for children, unshare(2)), which copies only the calling thread and does not run glibc's
// fork handlers. So they refuse to run in a multithreaded process (minijail gives the same
// warning); the manager spawns from a single-threaded process. In the child, glibc's
// cached thread id is stale (pthread_kill(pthread_self()) and raise() misdirect);
// threads the child creates are correct.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "sandbox/policy.h"
#include "sandbox/report.h"
#include "sandbox/roles.h"

namespace vmm::sandbox {

inline constexpr const char* kBoundDirInside = "/uds";

struct ConfineOptions {
  std::string role = {};              // one of RoleNames()
  std::vector<int> keep_fds = {};     // every other fd is closed (close_range(2))
  std::vector<Rlimit> rlimits = {};   // empty: RoleRlimits(role); RLIMIT_CORE 0 is always added
  PolicyParams policy_params = {};    // e.g. {kParamImageFd, 5}; "self_pid" is filled in
  std::optional<Policy> policy = {};  // replaces PolicyForRole(role) (tests, experiments)
  // Kept directory fds beneath which Landlock allows regular-file access (the vtpm state
  // dir). Landlock is then required, as it is for any policy that allows a path-taking
  // syscall (openat, renameat, ...): Confine fails on a kernel without it.
  std::vector<int> landlock_file_dirs = {};
  // A host directory bound (read-only, nosuid, nodev, noexec) at kBoundDirInside in the new
  // root: the directory of the unix sockets a vsock device connects to (ARCHITECTURE.md §1).
  // Empty: none; the root stays empty.
  std::string bind_dir = {};
  bool new_user_ns = ::geteuid() != 0;  // the spawner adds a user namespace (uid 0 inside)
  // SIGKILL: the child is pid 1 of its namespace, which ignores signals it has no handler
  // for, except SIGKILL/SIGSTOP from an ancestor namespace (pid_namespaces(7)).
  int parent_death_signal = SIGKILL;
  std::string selinux_level = "s0";  // per-VM MCS level for the exec context (SpawnRole)
  // SpawnConfined/SpawnRole: a cgroup v2 directory fd; the child is cloned into that cgroup
  // (clone3 CLONE_INTO_CGROUP, Linux 5.7), so it never runs outside it. -1: the caller's.
  int cgroup_fd = -1;
  // SpawnRole: the AppArmor profile the child is exec'd into (SetAppArmorExecProfile, the
  // VM's generated profile, ARCHITECTURE.md "AppArmor"); empty: none. The caller decides whether
  // AppArmor is on; a profile that cannot be set fails the spawn.
  std::string apparmor_profile = {};
  // SpawnConfined/SpawnRole: made the child's fd 2 before anything else, e.g. the write end
  // of a ChildLog, so that the child's lines reach the parent whatever its rlimits
  // (child_log.h). -1: the child keeps the parent's stderr. Keep STDERR_FILENO in keep_fds.
  int stderr_fd = -1;
  // Receives notes about skipped or degraded steps ("landlock: skipped: ..."). Unset: a
  // line on stderr. With SpawnConfined/SpawnRole it runs in the parent.
  std::function<void(const std::string&)> log = {};
};

// Applies every step to the calling process, which must be single-threaded and pid 1 of
// its own pid namespace (started by SpawnConfined or SpawnRole). Irreversible.
Result<void> Confine(const ConfineOptions& options);

// Clones a child into a new pid namespace (and user namespace if options.new_user_ns),
// confines it and runs body(); the child exits with body's return value. Returns the
// child's pid in the caller's namespace once confinement succeeded, or the child's error
// (the child has then exited and been reaped). The caller owns the child: waitpid it.
Result<pid_t> SpawnConfined(const ConfineOptions& options, std::function<int()> body);

// Clones a child as above, sets PR_SET_PDEATHSIG, closes every fd not in keep_fds (which
// stay open across exec), sets the role's SELinux exec context and options.apparmor_profile
// (if any) for the exec, and execs `path` with
// ChildEnvironment(). The role binary then calls Confine() first thing. Returns the
// child's pid once exec succeeded.
Result<pid_t> SpawnRole(const ConfineOptions& options, const std::string& path,
                        const std::vector<std::string>& argv);

// Ends a confined process: flushes stdio and _exit()s. A role binary returns through this,
// never through exit(): exit handlers of libraries, and a sanitizer build's leak checker
// (which ptrace-stops the process's threads: prctl, clone, ptrace), would make syscalls
// the role's filter kills.
[[noreturn]] void ExitConfined(int code);

// The environment SpawnRole execs a role binary with. Empty, so that nothing of the
// caller's (credentials in variables, proxies, library and config search paths such as
// LD_PRELOAD or OPENSSL_CONF) reaches a confined child. In a sanitizer build (VMM_SANITIZE),
// also the sanitizer runtimes' options that the caller has (ASAN_OPTIONS, UBSAN_OPTIONS,
// LSAN_OPTIONS), so that a test run's halt_on_error or detect_leaks holds in the children.
// SpawnConfined does not exec: its child is a copy of the caller, environment included.
std::vector<std::string> ChildEnvironment();

// The limit Confine will set for `resource` in `role` (RoleRlimits), as it sets it: never
// above the calling process's current hard limit. For a resource the role leaves alone,
// that hard limit. For sizing things before confinement (the vTPM's channel cap).
Result<rlim_t> ConfinedRlimit(std::string_view role, int resource);

// Closes every fd of the calling process that is not in `keep` (close_range(2), Linux 5.9).
// Fails if a kept fd is not open.
Result<void> CloseFdsExcept(std::span<const int> keep);

// If SELinux is enabled, setexeccon() to RoleSelinuxContext(role, level) for the next
// execve; returns what it did, or "SELinux off".
Result<std::string> SetSelinuxExecContext(std::string_view role, std::string_view level);

// True when SELinux is enabled on this host and enforcing (the launch policy's
// require.selinux, ARCHITECTURE.md §9).
bool SelinuxEnforcing();

}  // namespace vmm::sandbox
