// The AppArmor profile a role binary is exec'd into (ARCHITECTURE.md "AppArmor").
//
//   // in the child SpawnRole cloned, just before execve:
//   ASSIGN_OR_RETURN(std::string note, SetAppArmorExecProfile("vmm-0123abcd-blk0"));
//
// libapparmor's aa_change_onexec() writes /proc/<tid>/attr/..., with the tid as the caller's
// pid namespace numbers it; a child of SpawnRole is pid 1 of a new pid namespace while /proc
// is still its parent's, so that path would name another process. This writes through
// /proc/thread-self instead, which the kernel resolves in /proc's own namespace, and needs
// no library: the role binaries, which link this, stay free of libapparmor (tests/layout).
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace vmm::sandbox {

// Asks the kernel to move the calling thread into `profile` at its next execve ("exec
// <profile>" into attr/apparmor/exec, or attr/exec before Linux 5.1). Fails if the name is
// not a plain profile name, AppArmor refuses (the profile is not loaded: ENOENT), or the
// file is missing. Returns a note for the log.
Result<std::string> SetAppArmorExecProfile(std::string_view profile);

// True for the names SetAppArmorExecProfile accepts: 1-128 characters of [A-Za-z0-9._-],
// not starting with '-' or '.'. The generated per-VM names (vmm-<id>-<process>) are such.
bool IsPlainAppArmorName(std::string_view name);

}  // namespace vmm::sandbox
