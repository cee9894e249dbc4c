// Landlock through its raw syscalls (glibc 2.36 has no wrappers; Debian 12's uapi header
// stops at ABI 2, so the newer access bits are defined in landlock.cc with their kernel).
//
//   ASSIGN_OR_RETURN(int abi, LandlockAbi());              // kUnsupported when absent
//   ASSIGN_OR_RETURN(std::string note, RestrictFilesystem(abi, {}));  // no file access at all
//   ASSIGN_OR_RETURN(note, RestrictLandlock(abi, {.grants = {{dir, kLandlockRemoveFile}}}));
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

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

// LANDLOCK_ACCESS_FS_* rights (ABI 1) a grant may name.
inline constexpr uint64_t kLandlockRemoveDir = 1ULL << 4;
inline constexpr uint64_t kLandlockRemoveFile = 1ULL << 5;

// Every LANDLOCK_ACCESS_FS_* right the given ABI knows (what a ruleset handles).
uint64_t LandlockHandledFs(int abi);

// `access` beneath the directory `dir` (an fd, borrowed; O_PATH is enough).
struct LandlockGrant {
  int dir = -1;
  uint64_t access = 0;
};

struct LandlockRules {
  std::vector<LandlockGrant> grants = {};
  // ABI >= 6 only. Signal scoping refuses signals (kill, pidfd_send_signal) to any process
  // outside the new domain, which includes children started before it: a process that must
  // keep signalling those leaves it off.
  bool scope_signals = true;
  bool scope_abstract_unix = true;
};

// Restricts the calling thread and its future children like RestrictFilesystem, but grants
// exactly `rules.grants` (each masked to what the ABI handles) and the chosen scopes. Every
// filesystem right the ABI knows is handled; with ABI >= 4, TCP bind/connect are denied.
// Needs PR_SET_NO_NEW_PRIVS first. Returns a one-line description of what was applied.
Result<std::string> RestrictLandlock(int abi, const LandlockRules& rules);

}  // namespace vmm::sandbox
