#include "vmm/manager/privilege.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>

#include "sandbox/landlock.h"
#include "sandbox/roles.h"

namespace vmm {
namespace {

bool g_confined = false;  // set once, by the single-threaded caller of ConfineManager

Result<ManagerUser> LookUp(const std::string& name) {
  passwd pw{}, *found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return Error(ErrorKind::kInvalidArgument, "--user '" + name + "': no such user on this host");
  }
  ManagerUser u{name, pw.pw_uid, pw.pw_gid, {}};
  int n = 64;
  for (int tries = 0; tries < 4; ++tries) {
    u.groups.resize(static_cast<size_t>(n));
    int got = n;
    if (getgrouplist(name.c_str(), pw.pw_gid, u.groups.data(), &got) >= 0) {
      u.groups.resize(static_cast<size_t>(got));
      return u;
    }
    n = got > n ? got : n * 2;
  }
  return InvalidArgument("--user '" + name + "': cannot list its groups");
}

bool AnyCapability() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return true;
  for (const auto& d : data) {
    if (d.effective || d.permitted || d.inheritable) return true;
  }
  for (int cap = 0; cap < 64; ++cap) {
    const int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (r < 0) break;  // EINVAL past the kernel's last capability
    if (r == 1) return true;
  }
  for (int cap = 0; cap < 64; ++cap) {
    const int r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
    if (r < 0) break;
    if (r == 1) return true;
  }
  return false;
}

}  // namespace

Result<std::optional<ManagerUser>> ResolveManagerUser(const std::string& flag, std::string& note) {
  if (geteuid() != 0) {
    if (flag.empty()) return std::optional<ManagerUser>();
    ASSIGN_OR_RETURN(ManagerUser u, LookUp(flag));
    if (u.uid != geteuid()) {
      return InvalidArgument("--user '" + flag +
                             "': only root can become another user (vmm runs as uid " +
                             std::to_string(geteuid()) + ")");
    }
    return std::optional<ManagerUser>();
  }
  if (flag == "root") return std::optional<ManagerUser>();
  const std::string name = flag.empty() ? kDefaultManagerUser : flag;
  auto u = LookUp(name);
  if (!u) {
    if (!flag.empty()) return u.error();
    note = std::string("no user '") + kDefaultManagerUser +
           "' on this host: the manager stays root with all its capabilities (create the system "
           "user, or give --user NAME to drop to another, or --user root to keep root on purpose)";
    return std::optional<ManagerUser>();
  }
  if (u->uid == 0) {
    return InvalidArgument("--user '" + name + "' is uid 0: give --user root to stay root");
  }
  return std::optional<ManagerUser>(std::move(u).value());
}

Result<void> DropPrivileges(const ManagerUser& user) {
  // While still root: nothing may come back through the ambient or bounding sets.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return ErrnoError("dropping privileges: PR_CAP_AMBIENT_CLEAR_ALL");
  }
  for (int cap = 0; cap < 64; ++cap) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return ErrnoError("dropping privileges: PR_CAPBSET_DROP " + std::to_string(cap));
    }
  }
  if (setgroups(user.groups.size(), user.groups.data()) != 0) {
    return ErrnoError("dropping privileges: setgroups for '" + user.name + "'");
  }
  if (setresgid(user.gid, user.gid, user.gid) != 0) {
    return ErrnoError("dropping privileges: setresgid(" + std::to_string(user.gid) + ")");
  }
  // Without SECBIT_KEEP_CAPS, leaving uid 0 clears the permitted and effective sets.
  if (setresuid(user.uid, user.uid, user.uid) != 0) {
    return ErrnoError("dropping privileges: setresuid(" + std::to_string(user.uid) + ")");
  }
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &hdr, none) != 0) return ErrnoError("dropping privileges: capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return ErrnoError("dropping privileges: PR_SET_NO_NEW_PRIVS");
  }
  // Checked with the kernel, not assumed.
  uid_t r = 0, e = 0, s = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (getresuid(&r, &e, &s) != 0 || r != user.uid || e != user.uid || s != user.uid ||
      getresgid(&rg, &eg, &sg) != 0 || rg != user.gid || eg != user.gid || sg != user.gid) {
    return Error(ErrorKind::kInternal, "dropping privileges: uid or gid not changed");
  }
  if (AnyCapability())
    return Error(ErrorKind::kInternal, "dropping privileges: a capability is left");
  if (setuid(0) == 0)
    return Error(ErrorKind::kInternal, "dropping privileges: setuid(0) succeeded");
  return Ok();
}

Result<std::string> RestrictManagerFilesystem(int abi, const ManagerConfinement& c) {
  sandbox::LandlockRules rules;
  for (int dir : c.remove_files_beneath)
    rules.grants.push_back({dir, sandbox::kLandlockRemoveFile});
  for (int dir : c.remove_dirs_beneath) rules.grants.push_back({dir, sandbox::kLandlockRemoveDir});
  rules.scope_signals = false;  // pidfd_send_signal to children outside this domain
  rules.scope_abstract_unix = true;
  return sandbox::RestrictLandlock(abi, rules);
}

Result<void> ConfineManager(const ManagerConfinement& c) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return ErrnoError("confining the manager: PR_SET_NO_NEW_PRIVS");
  }
  if (auto abi = sandbox::LandlockAbi(); abi) {
    auto note = RestrictManagerFilesystem(*abi, c);
    if (!note) return note.error().Wrap("confining the manager: Landlock");
    std::fprintf(stderr, "vmm: manager: landlock: %s\n", note->c_str());
  } else {
    std::fprintf(stderr, "vmm: manager: landlock: skipped: %s\n", abi.error().ToString().c_str());
  }
  ASSIGN_OR_RETURN(sandbox::Policy policy, sandbox::PolicyForRole(sandbox::kManagerRole));
  // No API: a value no fd has (accept on it fails with EBADF).
  const uint64_t api = c.api_socket >= 0 ? static_cast<uint64_t>(c.api_socket) : 0x7fffffffULL;
  RETURN_IF_ERROR(policy.Apply({{"api_socket", api}}));
  g_confined = true;
  return Ok();
}

bool ManagerConfined() { return g_confined; }

}  // namespace vmm
