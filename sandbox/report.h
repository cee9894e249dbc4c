// What the kernel says about a process's confinement, read back from /proc.
//
//   ASSIGN_OR_RETURN(ConfinementReport r, ReadConfinementReport(child_pid));
//   if (r.cap_eff != 0 || r.seccomp_mode != 2) ...
//
// A confined process has no /proc of its own (its root is an empty tmpfs) and may not
// open files, so tests and the manager read it from outside: /proc/<pid>/{status,ns,fd}
// (reading ns and fd needs ptrace read access to the process, proc(5)).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::sandbox {

struct ConfinementReport {
  uint64_t cap_inh = ~0ULL, cap_prm = ~0ULL, cap_eff = ~0ULL, cap_bnd = ~0ULL, cap_amb = ~0ULL;
  int no_new_privs = -1;
  int seccomp_mode = -1;  // 0 none, 1 strict, 2 filter (proc(5) "Seccomp:")
  int threads = -1;
  std::map<std::string, std::string> namespaces;  // "net" -> "net:[4026532008]"
  std::vector<int> fds;                           // open fds, ascending
};

// Fills the fields that /proc/<pid>/status carries (caps, NoNewPrivs, Seccomp, Threads).
Result<ConfinementReport> ParseProcStatus(std::string_view status);

// status, ns/* and fd/ of `pid` (0: the calling process, without the fd used to list fd/).
Result<ConfinementReport> ReadConfinementReport(pid_t pid);

// One line: "CapEff=0 CapPrm=0 CapBnd=0 CapAmb=0 NoNewPrivs=1 Seccomp=2 fds=3,4".
std::string DescribeReport(const ConfinementReport& r);

}  // namespace vmm::sandbox
