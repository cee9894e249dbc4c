// The manager's children (vmm-vcpu, vmm-device, vmm-vtpm), started one way.
//
//   ASSIGN_OR_RETURN(ManagedChild c, SpawnManagedChild(o, binary, argv, "vtpm"));
//   poll c.pidfd (readable once it ended) and c.log.fd() (its stderr lines)
//
// The caller owns the child: it reaps it (waitpid) and forwards its log to the end.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "sandbox/child_log.h"
#include "sandbox/confine.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm {

struct ManagedChild {
  pid_t pid = -1;
  UniqueFd pidfd;         // readable once the child ended
  sandbox::ChildLog log;  // its stderr: poll log.fd(), log.Forward() to ours, prefixed
};

// sandbox::SpawnRole(o, binary, argv) with the child's stderr on a new ChildLog whose lines
// reach our stderr as "vmm: <label>: ...", o.log's notes likewise, and a pidfd. On failure
// nothing is left running, and whatever the child said before it failed is forwarded.
Result<ManagedChild> SpawnManagedChild(sandbox::ConfineOptions o, const std::string& binary,
                                       const std::vector<std::string>& argv,
                                       const std::string& label);

}  // namespace vmm
