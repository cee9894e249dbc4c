// The VM's cgroup v2 limits (ARCHITECTURE.md §9): the launch policy's limits.cgroup (CPU time,
// memory, tasks) applied to a cgroup of the VM's own, made in the cgroup the host delegated to
// the manager, as Firecracker's jailer does. Every child of the VM is cloned straight into it
// (clone3 CLONE_INTO_CGROUP, sandbox::ConfineOptions::cgroup_fd), so no instruction of a child
// runs outside it; the manager stays outside (its own leaf), and removes the cgroup at the end.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<VmCgroup> cg,
//                    SetUpVmCgroup(CgroupMode::kAuto, policy.cgroup, uuid, CgroupHost{}, &note));
//   if (cg) { ChildCgroupScope scope(cg->fd()); ...spawn the children...; }   // else: `note`
//
// Delegated means: the manager's cgroup (the "0::" line of /proc/self/cgroup) lies on a
// cgroup2 mount (/proc/self/mountinfo), lists the controllers the limits need in
// cgroup.controllers, and its cgroup.procs, cgroup.subtree_control and directory are writable
// by us. Because a cgroup that passes controllers down may hold no processes itself (cgroup v2's
// "no internal processes" rule), the manager first moves itself into a leaf `<own>/manager`, as
// a systemd service with Delegate=yes does. Not delegated (cgroup v1 or hybrid hosts, whose
// cgroup2 mount has no controllers; a read-only or foreign cgroup): kUnsupported, which
// `--cgroup auto` reports in one line and runs the VM without limits.
//
// Ownership: VmCgroup owns the cgroup directory and its fd; its destructor removes the
// directory (which the kernel allows once every process in it has ended and been reaped).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "policy/launch_policy.h"

namespace vmm {

// Pure parsers of what the kernel shows us; bounded and strict (fuzzed as cgroup_fuzzer).
inline constexpr size_t kMaxMountinfoBytes = 4 << 20;
inline constexpr size_t kMaxProcCgroupBytes = 64 << 10;
inline constexpr size_t kMaxCgroupFileBytes = 4096;

struct Cgroup2Mount {
  std::string root;         // the cgroup the mount shows at its top ("/" unless a bind mount)
  std::string mount_point;  // where it is mounted, octal escapes (\040) decoded
};
// Every cgroup2 mount of a /proc/PID/mountinfo text (proc(5)), in order; other mounts skipped.
// kInvalidArgument for a line that is not mountinfo, naming its number.
Result<std::vector<Cgroup2Mount>> ParseCgroup2Mounts(std::string_view mountinfo);
// The cgroup v2 path of a /proc/PID/cgroup text: its "0::/..." line. kNotFound without one
// (a host with cgroup v1 only); kInvalidArgument for a malformed text.
Result<std::string> ParseOwnCgroup(std::string_view proc_cgroup);
// A cgroup.controllers or cgroup.subtree_control text: names separated by spaces, one line.
Result<std::vector<std::string>> ParseControllerList(std::string_view text);
// The directory of cgroup `path` ("/a/b") under the mounts: the first mount whose root is
// `path` or above it. kNotFound when none shows it.
Result<std::string> CgroupDirectory(const std::vector<Cgroup2Mount>& mounts,
                                    const std::string& path);

enum class CgroupMode { kOff, kAuto, kRequired };
Result<CgroupMode> ParseCgroupMode(std::string_view text);  // "off", "auto", "required"

// Where the facts come from. Tests point these at a temp dir standing in for the host, and set
// the hooks so that a plain directory behaves like cgroupfs (which fills a new cgroup with its
// interface files itself, and lets rmdir remove them).
struct CgroupHost {
  std::string mountinfo = "/proc/self/mountinfo";
  std::string self_cgroup = "/proc/self/cgroup";
  std::function<void(const std::string& dir)> after_mkdir = {};
  std::function<void(const std::string& dir)> before_rmdir = {};
};

class VmCgroup {
 public:
  // Makes `vmm-<uuid>` in the delegated cgroup and writes the limits. kUnsupported: not
  // delegated (the message says why); other kinds: the cgroup was delegated and still failed.
  static Result<std::unique_ptr<VmCgroup>> Create(const CgroupHost& host,
                                                  const std::string& vm_uuid,
                                                  const policy::CgroupLimits& limits);
  ~VmCgroup();
  VmCgroup(const VmCgroup&) = delete;
  VmCgroup& operator=(const VmCgroup&) = delete;

  int fd() const { return dir_.get(); }            // for CLONE_INTO_CGROUP
  int parent_fd() const { return parent_.get(); }  // where Remove() removes it (Landlock rule)
  const std::string& directory() const { return directory_; }  // in the filesystem
  const std::string& path() const { return path_; }            // as /proc/PID/cgroup shows it
  // What the start's audit record holds: cgroup, cgroup.cpu_max, cgroup.memory_max, ...
  std::vector<std::pair<std::string, std::string>> AuditDetails() const;
  // Removes the directory now (waiting up to 1 s for ended processes to leave it).
  Result<void> Remove();

 private:
  VmCgroup() = default;
  CgroupHost host_;
  UniqueFd parent_;
  UniqueFd dir_;
  std::string name_, directory_, path_;
  policy::CgroupLimits limits_;
  bool removed_ = false;
};

// `vmm run --cgroup MODE` with the admitting policy's limits: off or no limits, nullptr;
// auto, the cgroup, or nullptr with `note` saying why there are no limits; required, the
// cgroup or an error.
Result<std::unique_ptr<VmCgroup>> SetUpVmCgroup(CgroupMode mode,
                                                const std::optional<policy::CgroupLimits>& limits,
                                                const std::string& vm_uuid, const CgroupHost& host,
                                                std::string* note);

}  // namespace vmm
