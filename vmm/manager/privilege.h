// The manager's own privileges (ARCHITECTURE.md §1): a root-started `vmm run` opens what it
// needs (/dev/kvm, images, the vTPM's state and key, the API socket, the audit log), then
// becomes a dedicated user with no capabilities before it starts any child.
//
//   ASSIGN_OR_RETURN(std::optional<ManagerUser> user, ResolveManagerUser(flag, note));
//   ... open everything ...
//   if (user) RETURN_IF_ERROR(DropPrivileges(*user));
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmm {

inline constexpr char kDefaultManagerUser[] = "vmm";

struct ManagerUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // the user's supplementary groups (getgrouplist)
};

// Whom the manager becomes. `flag` is --user ("" when not given). Not root: none (the
// manager already runs as its caller; --user naming another user is an error). Root:
//   --user NAME  that user; an unknown name, or one that is uid 0 other than "root", is an error;
//   --user root  none: the manager stays root, on purpose;
//   no --user    the "vmm" system user if it exists, else none, with `note` saying so.
Result<std::optional<ManagerUser>> ResolveManagerUser(const std::string& flag, std::string& note);

// Irreversibly becomes `user`: the ambient and bounding capability sets cleared while still
// root, then the supplementary groups, gid and uid (real, effective and saved), then every
// capability set checked empty, then PR_SET_NO_NEW_PRIVS. The caller must be single-threaded
// (capabilities are per thread). Each failure names its step.
Result<void> DropPrivileges(const ManagerUser& user);

// What the confined manager still reaches by path (ARCHITECTURE.md §2 step 5): removals at the
// end of the run, each beneath a directory it holds an fd of (borrowed; O_PATH is enough).
struct ManagerConfinement {
  int api_socket = -1;  // the API's listening socket, or -1
  // Files it removes: the API socket, the AppArmor profile file. Their directories.
  std::vector<int> remove_files_beneath = {};
  // Directories it removes: the VM's cgroup. Its parent.
  std::vector<int> remove_dirs_beneath = {};
};

// The manager's Landlock domain, on the calling thread (and the threads it starts later):
// every filesystem right the ABI knows is handled, and only REMOVE_FILE / REMOVE_DIR are
// granted, beneath `c`'s directories; no TCP bind/connect (ABI >= 4); abstract unix sockets
// scoped (ABI >= 6), signals not: a scoped manager could not signal its children, which were
// started outside its domain. Needs PR_SET_NO_NEW_PRIVS. Returns what was applied, one line.
Result<std::string> RestrictManagerFilesystem(int abi, const ManagerConfinement& c);

// Confines the calling process, which must be single-threaded: PR_SET_NO_NEW_PRIVS, then
// RestrictManagerFilesystem where the kernel has Landlock (without it, one line on stderr says
// so and the run goes on, as for the children), then the manager's own seccomp filter (sandbox
// role "manager", kill by default). `vmm run` calls it in every run, root or not, once every
// child runs and before the API threads start, which inherit both and add their own
// (ARCHITECTURE.md §1).
Result<void> ConfineManager(const ManagerConfinement& c);

// Whether ConfineManager has loaded the filter in this process.
bool ManagerConfined();

}  // namespace vmm
