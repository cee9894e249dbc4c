#include "vmm/manager/child_process.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace vmm {

Result<ManagedChild> SpawnManagedChild(sandbox::ConfineOptions o, const std::string& binary,
                                       const std::vector<std::string>& argv,
                                       const std::string& label) {
  o.log = [label](const std::string& note) {
    std::fprintf(stderr, "vmm: %s: %s\n", label.c_str(), note.c_str());
  };
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
