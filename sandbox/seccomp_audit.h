// Which system call a seccomp filter killed a process for, from the kernel's audit record.
//
//   if (auto name = SeccompKilledSyscall(pid)) msg += " (" + *name + ")";   // after SIGSYS
//
// A SECCOMP_RET_KILL_PROCESS leaves its parent only "killed by SIGSYS"; the syscall is in
// the AUDIT_SECCOMP record (type=1326) the kernel logs, which reaches the kernel log
// (/dev/kmsg) when no audit daemon takes it. The manager (root, unconfined) reads it there;
// with auditd running, the record is in its log instead and this returns nothing.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace vmm::sandbox {

// The syscall number of a seccomp audit record for `pid` in one kernel log line, e.g.
// "... audit: type=1326 ... pid=812 comm=\"vmm-device\" ... syscall=41 compat=0 ...".
std::optional<int> ParseSeccompAuditLine(std::string_view line, pid_t pid);

// "socket (41)"; the number alone when libseccomp does not know it.
std::string SyscallName(int nr);

// Looks for `pid`'s record in /dev/kmsg for up to `wait_ms` (the kernel logs it
// asynchronously). std::nullopt when it is not there or /dev/kmsg is not readable.
std::optional<std::string> SeccompKilledSyscall(pid_t pid, int wait_ms = 300);

}  // namespace vmm::sandbox
