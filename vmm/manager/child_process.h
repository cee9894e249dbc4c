// The manager's children (vmm-vcpu, vmm-device, vmm-vtpm), started, watched and ended one way.
//
//   ASSIGN_OR_RETURN(ManagedChild c, SpawnManagedChild(o, binary, argv, "vtpm"));
//   poll c.pidfd (readable once it ended) and c.log.fd() (its stderr lines)
//   ChildExit e = c.Reap();        // once it ended (or c.Stop(grace_ms) to end it)
//   if (!e.Succeeded()) report e.text
//
// The owner of a ManagedChild reaps it (Reap or Stop), which also forwards its log to the end.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "sandbox/child_log.h"
#include "sandbox/confine.h"

namespace vmm {

// How a child ended: typed, so that callers decide on `how` and `status`, never on `text`.
struct ChildExit {
  enum class How { kExited, kKilled, kUnknown };
  How how = How::kUnknown;          // kUnknown: waitid failed, or it had been reaped already
  int status = -1;                  // the exit status (kExited) or the signal (kKilled)
  bool killed_after_grace = false;  // Stop() sent SIGKILL after the grace period
  std::string text;  // "exited with status 1", "was killed by SIGSYS: its seccomp filter
                     // denied socket (41)" (the syscall from the kernel's audit record)
  bool Succeeded() const { return how == How::kExited && status == 0; }
};

// The MCS level every child of this manager's VM is started at (its exec context's level,
// ConfineOptions::selinux_level): "s0" until set. A manager process runs one VM, so this is
// set once, before the first child starts, to the VM's pair (mcs.h, ARCHITECTURE.md §11).
void SetChildSelinuxLevel(std::string level);
const std::string& ChildSelinuxLevel();

// Reaps the child behind `pidfd` (blocking until it ended) and says how it ended.
ChildExit DescribeExit(int pidfd);

// Waits up to `timeout_ms` for the child behind `pidfd` to end, forwarding its log
// meanwhile (a child blocked on a full log pipe would never end). True if it ended.
bool WaitForExit(int pidfd, sandbox::ChildLog& log, int timeout_ms);

struct ManagedChild {
  pid_t pid = -1;         // -1 once reaped
  UniqueFd pidfd;         // readable once the child ended
  sandbox::ChildLog log;  // its stderr: poll log.fd(), log.Forward() to ours, prefixed

  bool running() const { return pid > 0; }
  // Sends `sig` through the pidfd (pidfd_send_signal), never by pid: the manager's own filter
  // has no kill(2) (ARCHITECTURE.md §2 step 5), and a pidfd cannot name a recycled pid.
  // Nothing once reaped.
  void Signal(int sig) const;
  // Blocks until it ended, reaps it, then forwards the rest of its log. kUnknown with
  // "already reaped" when it was.
  ChildExit Reap();
  // The end after its channels closed: waits up to `grace_ms` for it to exit (forwarding
  // its log), SIGKILLs it otherwise (killed_after_grace), then Reap().
  ChildExit Stop(int grace_ms);
};

// While one exists, every SpawnManagedChild clones its child into the cgroup `cgroup_fd` (a
// VmCgroup's, cgroup.h), unless its options name another. One manager runs one VM, so the
// VM's cgroup is the process's setting rather than a parameter of every start function.
class ChildCgroupScope {
 public:
  explicit ChildCgroupScope(int cgroup_fd);
  ~ChildCgroupScope();
  ChildCgroupScope(const ChildCgroupScope&) = delete;
  ChildCgroupScope& operator=(const ChildCgroupScope&) = delete;

 private:
  int previous_;
};

// sandbox::SpawnRole(o, binary, argv) with the child's stderr on a new ChildLog whose lines
// reach our stderr as "vmm: <label>: ...", o.log's notes likewise, and a pidfd. On failure
// nothing is left running, and whatever the child said before it failed is forwarded.
Result<ManagedChild> SpawnManagedChild(sandbox::ConfineOptions o, const std::string& binary,
                                       const std::vector<std::string>& argv,
                                       const std::string& label);

}  // namespace vmm
