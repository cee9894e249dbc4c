// SpawnConfined and SpawnRole: a child in a new pid (and user) namespace, and a status
// channel that carries its notes and its first error back to the parent.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "base/unique_fd.h"
#include "sandbox/apparmor.h"
#include "sandbox/confine.h"

namespace vmm::sandbox {
namespace {

constexpr int kExitConfineFailed = 126;  // the child's exit code when it reported an error
constexpr int kExitExecFailed = 127;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerBuild = true;  // VMM_SANITIZE=ON (build-asan/)
#else
constexpr bool kSanitizerBuild = false;
#endif

// Child -> parent, one line each: "N<note>", "E<errno> <kind> <message>", "K" (confined,
// or about to exec). An "E" after "K" is a failed execve.
class StatusChannel {
 public:
  explicit StatusChannel(int fd) : fd_(fd) {}
  void Note(const std::string& s) { Send("N" + s); }
  void Fail(const Error& e) {
    Send("E" + std::to_string(e.sys_errno()) + " " + std::to_string(static_cast<int>(e.kind())) +
         " " + e.message());
  }
  void Confined() { Send("K"); }

 private:
  void Send(std::string line) {
    std::replace(line.begin(), line.end(), '\n', ' ');
    line += '\n';
    (void)!write(fd_, line.data(), line.size());
  }
  int fd_;
};

Result<void> WriteProcFile(const char* path, const std::string& text) {
  UniqueFd fd(open(path, O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(std::string("open ") + path);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoError(std::string("write ") + path);
  }
  return Ok();
}

// An unprivileged process may map exactly its own uid and gid into a namespace it created,
// and the gid map only after setgroups is denied (user_namespaces(7)).
Result<void> WriteIdMaps(uid_t uid, gid_t gid) {
  RETURN_IF_ERROR(WriteProcFile("/proc/self/setgroups", "deny"));
  RETURN_IF_ERROR(WriteProcFile("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1"));
  return WriteProcFile("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
}

// A caller that changed its uid is not dumpable, and then its /proc/self files belong to
// root (proc(5), PR_SET_DUMPABLE), so it cannot write its own maps. Dumpable only while
// writing them, then back to the caller's choice.
Result<void> MapToRoot(uid_t uid, gid_t gid) {
  int dumpable = prctl(PR_GET_DUMPABLE);
  if (dumpable == 1) return WriteIdMaps(uid, gid);
  if (prctl(PR_SET_DUMPABLE, 1) != 0) return ErrnoError("prctl(PR_SET_DUMPABLE)");
  auto written = WriteIdMaps(uid, gid);
  if (prctl(PR_SET_DUMPABLE, dumpable) != 0) return ErrnoError("prctl(PR_SET_DUMPABLE)");
  return written;
}

struct SpawnArgs {
  const ConfineOptions* options;
  std::function<int()> body;
  bool exec;  // SpawnRole: stop before Confine; body execs the role binary
  int status_fd;
  int parent_pidfd;  // -1 if pidfd_open is unavailable (Linux < 5.3)
  uid_t uid;
  gid_t gid;
};

[[noreturn]] void FailChild(StatusChannel& status, const Error& e, int code = kExitConfineFailed) {
  status.Fail(e);
  _exit(code);
}

[[noreturn]] void ChildMain(const SpawnArgs& a) {
  const ConfineOptions& o = *a.options;
  StatusChannel status(a.status_fd);
  auto fail = [&status](const Error& e) { FailChild(status, e); };
  if (o.new_user_ns) {
    auto r = MapToRoot(a.uid, a.gid);
    if (!r) fail(r.error().Wrap("confine " + o.role + ": user namespace"));
  }
  if (o.parent_death_signal != 0 && prctl(PR_SET_PDEATHSIG, o.parent_death_signal) != 0) {
    fail(ErrnoError("confine " + o.role + ": prctl(PR_SET_PDEATHSIG)"));
  }
  // The parent may have died before PR_SET_PDEATHSIG was armed; then no signal comes.
  pollfd p{a.parent_pidfd, POLLIN, 0};
  if (a.parent_pidfd >= 0 && poll(&p, 1, 0) == 1) _exit(kExitConfineFailed);
  if (a.parent_pidfd >= 0) close(a.parent_pidfd);
  if (o.stderr_fd >= 0 && o.stderr_fd != STDERR_FILENO && dup2(o.stderr_fd, STDERR_FILENO) < 0) {
    fail(ErrnoError("confine " + o.role + ": stderr_fd " + std::to_string(o.stderr_fd) +
                    " as fd 2"));
  }

  if (!a.exec) {
    ConfineOptions copy = o;
    copy.keep_fds.push_back(a.status_fd);
    copy.log = [&status](const std::string& note) { status.Note(note); };
    auto r = Confine(copy);
    if (!r) FailChild(status, r.error());
    status.Confined();
    close(a.status_fd);
    _exit(a.body());
  }

  std::vector<int> keep = o.keep_fds;
  keep.push_back(a.status_fd);
  auto closed = CloseFdsExcept(keep);
  if (!closed) fail(closed.error().Wrap("confine " + o.role + ": close fds"));
  for (int fd : o.keep_fds) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) != 0) {
      fail(ErrnoError("confine " + o.role + ": keep fd " + std::to_string(fd) + " across exec"));
    }
  }
  // A role binary starts like a fresh process: nothing blocked (the manager may block
  // SIGINT/SIGTERM for its signalfd; a blocked mask survives execve, signal(7)).
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  auto selinux = SetSelinuxExecContext(o.role, o.selinux_level);
  if (!selinux) fail(selinux.error().Wrap("confine " + o.role + ": selinux"));
  status.Note("selinux: " + *selinux);
  if (!o.apparmor_profile.empty()) {
    auto apparmor = SetAppArmorExecProfile(o.apparmor_profile);
    if (!apparmor) fail(apparmor.error().Wrap("confine " + o.role + ": apparmor"));
    status.Note("apparmor: " + *apparmor);
  }
  status.Confined();  // as far as this side goes; the role binary calls Confine()
  int rc = a.body();  // returns only if execve failed; the status fd closes on success
  FailChild(status, Error(ErrorKind::kSystem, "spawn " + o.role + ": execve", rc), kExitExecFailed);
}

// clone3's argument (linux/sched.h, struct clone_args, CLONE_ARGS_SIZE_VER2), spelled out so
// that glibc's <sched.h> and the kernel's header need not meet in one file.
struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};
constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;

// Like the raw clone above (no stack: the child runs on a copy of ours), into `cgroup_fd`.
long Clone3IntoCgroup(unsigned long flags, int cgroup_fd) {
  CloneArgs args{};
  args.flags = flags | kCloneIntoCgroup;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(cgroup_fd);
  return syscall(SYS_clone3, &args, sizeof(args));
}

std::string DescribeWait(int wstatus) {
  if (WIFEXITED(wstatus)) return "exited with " + std::to_string(WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) {
    const char* name = sigabbrev_np(WTERMSIG(wstatus));
    return std::string("killed by SIG") + (name ? name : "?");
  }
  return "stopped";
}

Result<pid_t> Spawn(const ConfineOptions& o, std::function<int()> body, bool exec) {
  auto self = ReadConfinementReport(0);
  if (!self) return self.error().Wrap("spawn " + o.role);
  if (self->threads != 1) {
    return InvalidArgument("spawn " + o.role + ": the caller has " + std::to_string(self->threads) +
                           " threads; a raw clone copies only one and none of glibc's fork "
                           "handlers run: spawn from a single-threaded process");
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("spawn " + o.role + ": pipe2");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  UniqueFd parent_pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));

  SpawnArgs args{&o,       std::move(body), exec, write_end.get(), parent_pidfd.get(),
                 getuid(), getgid()};
  unsigned long flags = CLONE_NEWPID | SIGCHLD;
  if (o.new_user_ns) flags |= CLONE_NEWUSER;
  // Raw clone (as minijail and sandbox2 do): glibc's clone() wants a separate stack, and
  // fork() has no namespace flags. With no stack given, the child runs on a copy of ours.
  // Into a cgroup: clone3 with CLONE_INTO_CGROUP, the only way the child is in it from its
  // first instruction (writing its pid to cgroup.procs afterwards would race with the child).
  long pid = o.cgroup_fd >= 0 ? Clone3IntoCgroup(flags & ~0xffUL, o.cgroup_fd)
                              : syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) {
    return ErrnoError("spawn " + o.role + ": clone(CLONE_NEWPID" +
                      std::string(o.new_user_ns ? "|CLONE_NEWUSER" : "") +
                      (o.cgroup_fd >= 0 ? "|CLONE_INTO_CGROUP" : "") + ")");
  }
  if (pid == 0) ChildMain(args);
  write_end.reset();
  parent_pidfd.reset();

  std::string text;
  char buf[512];
  for (;;) {
    ssize_t n = read(read_end.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  std::optional<Error> error;
  bool confined = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.empty()) continue;
    if (line[0] == 'N') {
      if (o.log)
        o.log(line.substr(1));
      else
        std::fprintf(stderr, "vmm-sandbox[%s]: %s\n", o.role.c_str(), line.c_str() + 1);
    } else if (line[0] == 'K') {
      confined = true;
    } else if (line[0] == 'E' && !error) {
      int err = 0, kind = 0, used = 0;
      std::sscanf(line.c_str() + 1, "%d %d %n", &err, &kind, &used);
      error = Error(static_cast<ErrorKind>(kind), line.substr(1 + static_cast<size_t>(used)), err);
    }
  }
  if (!error && confined) return static_cast<pid_t>(pid);

  int wstatus = 0;
  while (waitpid(static_cast<pid_t>(pid), &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (error) return *error;
  return Error(ErrorKind::kInternal, "spawn " + o.role + ": the child " + DescribeWait(wstatus) +
                                         " before it finished confinement");
}

}  // namespace

Result<pid_t> SpawnConfined(const ConfineOptions& options, std::function<int()> body) {
  return Spawn(options, std::move(body), /*exec=*/false);
}

std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  if (!kSanitizerBuild) return env;
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}) {
    if (const char* value = std::getenv(name)) env.push_back(std::string(name) + "=" + value);
  }
  return env;
}

Result<pid_t> SpawnRole(const ConfineOptions& options, const std::string& path,
                        const std::vector<std::string>& argv) {
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const std::vector<std::string> env = ChildEnvironment();
  std::vector<char*> cenv;
  for (const std::string& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  return Spawn(
      options,
      [&path, &cargv, &cenv] {
        execve(path.c_str(), cargv.data(), cenv.data());
        return errno;
      },
      /*exec=*/true);
}

}  // namespace vmm::sandbox
