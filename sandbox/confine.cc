#include "sandbox/confine.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <sched.h>
#include <selinux/selinux.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/unique_fd.h"
#include "sandbox/landlock.h"

namespace vmm::sandbox {
namespace {

Error StepError(const ConfineOptions& o, std::string_view step, const Error& e) {
  return e.Wrap("confine " + o.role + ": " + std::string(step));
}

#define CONFINE_STEP(step, expr)                                        \
  do {                                                                  \
    auto step_result_ = (expr);                                         \
    if (!step_result_) return StepError(o, step, step_result_.error()); \
  } while (0)

void Log(const ConfineOptions& o, const std::string& note) {
  if (o.log) {
    o.log(note);
    return;
  }
  std::string line = "vmm-sandbox[" + o.role + "]: " + note + "\n";
  (void)!write(STDERR_FILENO, line.data(), line.size());
}

Result<void> SysCheck(int rc, const char* what) {
  if (rc != 0) return ErrnoError(what);
  return Ok();
}

Result<void> EnterNamespaces() {
  if (getpid() != 1) {
    return InvalidArgument(
        "not pid 1 of its own pid namespace: start the process with SpawnConfined or "
        "SpawnRole (unshare(CLONE_NEWPID) applies only to children, unshare(2))");
  }
  // Also guarantees pivot_root below moves only our root: pivot_root(2) changes the root
  // of every process in the mount namespace that shares the old one.
  return SysCheck(unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET),
                  "unshare(CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWNET)");
}

// Any directory will do as the mount point: it is covered only in our private namespace.
const char* PickMountPoint() {
  for (const char* dir : {"/tmp", "/mnt", "/run", "/var/tmp", "/dev"}) {
    struct stat st {};
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return dir;
  }
  return nullptr;
}

// The initial ramfs/tmpfs root that the kernel unpacks the initramfs into.
bool RootIsInitramfs() {
  struct statfs fs {};
  if (statfs("/", &fs) != 0) return false;
  return fs.f_type == RAMFS_MAGIC || fs.f_type == TMPFS_MAGIC;
}

Result<void> PivotToEmptyRoot(const std::string& bind_dir, std::string* note) {
  // Nothing mounted from here on may propagate back to the host, where / is usually a
  // shared mount (systemd); pivot_root(2) also fails with EINVAL on a shared parent.
  RETURN_IF_ERROR(SysCheck(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr),
                           "make / private (MS_REC|MS_PRIVATE)"));
  const char* mp = PickMountPoint();
  if (mp == nullptr) return Error(ErrorKind::kNotFound, "no directory to mount the new root on");
  // Opened before the tmpfs goes over the mount point, which may hide the directory (/tmp).
  UniqueFd bind_src;
  if (!bind_dir.empty()) {
    bind_src.reset(open(bind_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!bind_src.valid()) return ErrnoError("open the socket directory '" + bind_dir + "'");
  }
  RETURN_IF_ERROR(SysCheck(mount("vmm-sandbox", mp, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                 "size=4k,nr_inodes=2,mode=0555"),
                           "mount tmpfs"));
  RETURN_IF_ERROR(SysCheck(chdir(mp), "chdir to the new root"));
  if (!bind_dir.empty()) {
    // The tmpfs has room for this one directory (nr_inodes=2). Only sockets in it can be
    // reached: a bind of the directory, not of anything above it, so ".." stops at it.
    const char* inside = kBoundDirInside + 1;  // relative to the new root
    RETURN_IF_ERROR(SysCheck(mkdir(inside, 0555), "mkdir the bound directory's mount point"));
    const std::string src = "/proc/self/fd/" + std::to_string(bind_src.get());
    RETURN_IF_ERROR(SysCheck(mount(src.c_str(), inside, nullptr, MS_BIND | MS_REC, nullptr),
                             "bind the socket directory"));
    bind_src.reset();
    RETURN_IF_ERROR(SysCheck(
        mount(nullptr, inside, nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr),
        "remount the socket directory read-only"));
  }
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
  // only the tmpfs (pivot_root(2), NOTES). No put_old directory is needed.
  if (syscall(SYS_pivot_root, ".", ".") == 0) {
    RETURN_IF_ERROR(SysCheck(umount2(".", MNT_DETACH), "detach the old root"));
    *note = "pivot_root into an empty read-only tmpfs";
  } else if (errno == EINVAL && RootIsInitramfs()) {
    // The initial rootfs cannot be pivoted away from (pivot_root(2): EINVAL); a host that
    // runs from its initramfs (our nested-KVM test harness) gets switch_root's method:
    // move the tmpfs over / and chroot into it. The old root stays mounted beneath, out of
    // reach: no fd into it survives (close fds above), and chroot, mount and the
    // capabilities to use them are gone (capabilities and seccomp below).
    RETURN_IF_ERROR(
        SysCheck(mount(".", "/", nullptr, MS_MOVE, nullptr), "move the new root over /"));
    RETURN_IF_ERROR(SysCheck(chroot("."), "chroot into the new root"));
    *note =
        "root is the initramfs, which pivot_root cannot leave: moved an empty tmpfs over / "
        "and chrooted into it";
  } else {
    return ErrnoError("pivot_root");
  }
  RETURN_IF_ERROR(SysCheck(chdir("/"), "chdir /"));
  return SysCheck(
      mount(nullptr, "/", nullptr,
            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr),
      "remount the new root read-only");
}

// Never raise: that needs CAP_SYS_RESOURCE, which even root may lack (it does on the
// project's build hosts), and a lower limit set by the operator should stand.
Result<rlim_t> LimitToApply(const Rlimit& l) {
  rlimit cur{};
  if (getrlimit(l.resource, &cur) != 0) {
    return ErrnoError("getrlimit(" + std::to_string(l.resource) + ")");
  }
  return std::min(l.value, cur.rlim_max);
}

Result<void> ApplyRlimits(const std::vector<Rlimit>& limits) {
  for (const Rlimit& l : limits) {
    ASSIGN_OR_RETURN(rlim_t v, LimitToApply(l));
    rlimit next{v, v};
    if (setrlimit(l.resource, &next) != 0) {
      return ErrnoError("setrlimit(" + std::to_string(l.resource) + ", " + std::to_string(v) + ")");
    }
  }
  return Ok();
}

Result<void> DropCapabilities() {
  capng_clear(CAPNG_SELECT_ALL);
  // Bounding set first, then effective/permitted/inheritable, then ambient (capng_apply).
  if (capng_apply(CAPNG_SELECT_ALL) != 0) {
    return Error(ErrorKind::kSystem, "capng_apply(CAPNG_SELECT_ALL)", errno);
  }
  // Check with the kernel rather than trust the library: capget(2) and PR_CAPBSET_READ.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return ErrnoError("capget");
  for (const auto& d : data) {
    if (d.effective || d.permitted || d.inheritable) {
      return Error(ErrorKind::kInternal, "capabilities still set after capng_apply");
    }
  }
  for (int cap = 0; cap < 64; ++cap) {
    int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (r < 0) break;  // EINVAL past the kernel's last capability
    if (r == 1) {
      return Error(ErrorKind::kInternal,
                   "capability " + std::to_string(cap) + " still in the bounding set");
    }
  }
  return Ok();
}

bool TakesPaths(const Policy& p) {
  for (const char* name :
       {"open", "openat", "openat2", "creat", "renameat", "renameat2", "unlinkat", "mkdirat",
        "linkat", "symlinkat", "mknodat", "newfstatat", "statx"}) {
    if (p.Mentions(name)) return true;
  }
  return false;
}

std::string SelinuxState() {
  if (is_selinux_enabled() <= 0) return "SELinux off";
  std::string s = security_getenforce() == 1 ? "SELinux enforcing" : "SELinux permissive";
  char* con = nullptr;
  if (getcon(&con) == 0 && con != nullptr) {
    s += ", running as " + std::string(con);
    freecon(con);
  }
  return s + " (a role's domain is entered at exec: SpawnRole)";
}

}  // namespace

Result<void> CloseFdsExcept(std::span<const int> keep) {
  std::vector<int> k(keep.begin(), keep.end());
  std::sort(k.begin(), k.end());
  k.erase(std::unique(k.begin(), k.end()), k.end());
  for (int fd : k) {
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
      return InvalidArgument("keep-list fd " + std::to_string(fd) + " is not open");
    }
  }
  unsigned first = 0;
  for (int fd : k) {
    unsigned u = static_cast<unsigned>(fd);
    if (u > first && close_range(first, u - 1, 0) != 0) return ErrnoError("close_range");
    first = u + 1;
  }
  if (close_range(first, ~0U, 0) != 0) return ErrnoError("close_range (Linux 5.9+)");
  return Ok();
}

Result<rlim_t> ConfinedRlimit(std::string_view role, int resource) {
  ASSIGN_OR_RETURN(std::vector<Rlimit> limits, RoleRlimits(role));
  for (const Rlimit& l : limits) {
    if (l.resource == resource) return LimitToApply(l);
  }
  rlimit cur{};
  if (getrlimit(resource, &cur) != 0)
    return ErrnoError("getrlimit(" + std::to_string(resource) + ")");
  return cur.rlim_max;
}

bool SelinuxEnforcing() { return is_selinux_enabled() > 0 && security_getenforce() == 1; }

Result<std::string> SetSelinuxExecContext(std::string_view role, std::string_view level) {
  if (is_selinux_enabled() <= 0) return std::string("SELinux off");
  std::string ctx = RoleSelinuxContext(role, level);
  if (setexeccon(ctx.c_str()) != 0) return ErrnoError("setexeccon " + ctx);
  return "exec context " + ctx;
}

Result<void> Confine(const ConfineOptions& o) {
  // Checks first, so that a wrong input fails before anything irreversible happens.
  std::optional<Policy> policy = o.policy;
  if (!policy) {
    auto p = PolicyForRole(o.role);
    if (!p) return StepError(o, "policy", p.error());
    policy = std::move(p).value();
  }
  for (const std::string& param : policy->RequiredParams()) {
    if (!o.policy_params.count(param)) {
      return StepError(o, "policy", InvalidArgument("parameter $" + param + " not given"));
    }
  }
  std::vector<Rlimit> limits = o.rlimits;
  if (limits.empty()) {
    auto role_limits = RoleRlimits(o.role);
    if (!role_limits) return StepError(o, "rlimits", role_limits.error());
    limits = std::move(role_limits).value();
  }
  auto has = [&](int res) {
    return std::any_of(limits.begin(), limits.end(),
                       [res](const Rlimit& l) { return l.resource == res; });
  };
  if (!has(RLIMIT_CORE)) limits.push_back({RLIMIT_CORE, 0});  // a core would hold guest data
  if (!has(RLIMIT_NOFILE)) {
    return StepError(o, "rlimits", InvalidArgument("RLIMIT_NOFILE must be bounded"));
  }
  for (int dir : o.landlock_file_dirs) {
    if (std::find(o.keep_fds.begin(), o.keep_fds.end(), dir) == o.keep_fds.end()) {
      return StepError(o, "landlock",
                       InvalidArgument("dir fd " + std::to_string(dir) + " is not in keep_fds"));
    }
  }
  auto self = ReadConfinementReport(0);
  if (!self) return StepError(o, "checks", self.error());
  if (self->threads != 1) {
    // capset, PR_SET_NO_NEW_PRIVS and landlock_restrict_self act on the calling thread only.
    return StepError(o, "checks",
                     InvalidArgument("the process has " + std::to_string(self->threads) +
                                     " threads; confine before starting any"));
  }
  Result<int> landlock_abi = LandlockAbi();
  if (!landlock_abi && (!o.landlock_file_dirs.empty() || TakesPaths(*policy))) {
    // Seccomp cannot read a path. Without Landlock, openat(dirfd, "../..") from a kept
    // directory fd reaches the host filesystem, whatever the filter says about the dirfd.
    return StepError(o, "landlock",
                     landlock_abi.error().Wrap(
                         "required by a policy that takes paths or by landlock_file_dirs"));
  }
  const std::string selinux = SelinuxState();  // needs /sys/fs/selinux: before pivot_root

  if (o.parent_death_signal != 0) {
    CONFINE_STEP("parent-death signal", SysCheck(prctl(PR_SET_PDEATHSIG, o.parent_death_signal),
                                                 "prctl(PR_SET_PDEATHSIG)"));
  }
  CONFINE_STEP("namespaces", EnterNamespaces());
  // Before pivot_root: a directory fd into the host tree would survive it (fchdir, "..").
  CONFINE_STEP("close fds", CloseFdsExcept(o.keep_fds));
  std::string root_note;
  CONFINE_STEP("pivot_root", PivotToEmptyRoot(o.bind_dir, &root_note));
  Log(o, "root: " + root_note);
  CONFINE_STEP("rlimits", ApplyRlimits(limits));
  CONFINE_STEP("capabilities", DropCapabilities());
  CONFINE_STEP("no_new_privs",
               SysCheck(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)"));
  if (landlock_abi) {
    auto note = RestrictFilesystem(*landlock_abi, o.landlock_file_dirs);
    if (!note) return StepError(o, "landlock", note.error());
    Log(o, "landlock: " + *note);
  } else {
    Log(o, "landlock: skipped: " + landlock_abi.error().ToString());
  }
  Log(o, "selinux: " + selinux);
  CONFINE_STEP("seccomp", policy->Apply(o.policy_params));
  return Ok();
}

void ExitConfined(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);
}

}  // namespace vmm::sandbox
