// Landlock through its raw syscalls (glibc 2.36 has no wrappers; Debian 12's uapi header
// stops at ABI 2, so the newer access bits are defined in landlock.cc with their kernel).
//
//   ASSIGN_OR_RETURN(int abi, LandlockAbi());              // kUnsupported when absent
//   ASSIGN_OR_RETURN(std::string note, RestrictFilesystem(abi, {}));  // no file access at all
#pragma once

#include <span>
#include <string>

#include "base/result.h"

namespace vmm::sandbox {

// The kernel's highest Landlock ABI version, or an Error (kUnsupported) saying why there is
// none: built without CONFIG_SECURITY_LANDLOCK (ENOSYS) or not in the boot's lsm= list
// (EOPNOTSUPP), per landlock(7).
Result<int> LandlockAbi();

// Restricts the calling thread and its future children (landlock_restrict_self(2)): every
// filesystem access the ABI knows is handled and none is granted, except regular-file
// access (read, write, create, remove, truncate; renames only within one directory)
// beneath each of `file_dirs` (directory fds, borrowed). With ABI >= 4 TCP bind/connect
// are denied too; with ABI >= 6 abstract unix sockets and signals are scoped to the domain.
// Needs PR_SET_NO_NEW_PRIVS first. Returns a one-line description of what was applied.
Result<std::string> RestrictFilesystem(int abi, std::span<const int> file_dirs);

}  // namespace vmm::sandbox
