// The VM's MCS category pair (sVirt model, ARCHITECTURE.md §11): every process of one VM runs
// at s0:cA,cB and every file of it carries the same level, so that the kernel keeps one VM's
// processes away from another's files even if our own confinement were wrong.
//
//   ASSIGN_OR_RETURN(McsPair pair, PickMcsPair(McsPairsInUse("/proc"), RandomBelow));
//   SetChildSelinuxLevel(pair.Level());        // child_process.h: each child's exec context
//   RETURN_IF_ERROR(LabelVmFile(image_fd, "vmm_image_t", pair.Level()));
//
// Uniqueness: a pair is in use while any process of the policy's vmm_ domains runs with it,
// which the kernel tells us through /proc/<pid>/attr/current (what libvirt checks in its own
// list of running VMs). Nothing to clean up when a manager dies: its VM's processes die with
// it (PR_SET_PDEATHSIG) and the pair is free again. Two managers that start at the same instant
// could both see a pair free; choosing at random among 523,776 pairs makes that unlikely, and a
// collision would put the two VMs in one category set, i.e. back to type enforcement only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmm {

inline constexpr int kMcsCategories = 1024;  // c0..c1023, the reference policy's MCS range

struct McsPair {
  int low = 0;                // cA
  int high = 0;               // cB, low < high
  std::string Level() const;  // "s0:cA,cB"
  auto operator<=>(const McsPair&) const = default;
};

// The pair of a context or level: "system_u:system_r:vmm_vcpu_t:s0:c12,c34" or "s0:c12,c34".
// None for a level without exactly two distinct categories (e.g. "s0", "s0-s0:c0.c1023").
std::optional<McsPair> ParseMcsPair(std::string_view context);

// The pairs that processes of a vmm_ role domain (not the manager) hold, from
// <proc>/<pid>/attr/current. Unreadable entries (processes that ended) are skipped.
std::set<McsPair> McsPairsInUse(const std::string& proc = "/proc");

// A random pair not in `in_use`. random_below(n) returns a uniform value in [0, n).
Result<McsPair> PickMcsPair(const std::set<McsPair>& in_use,
                            const std::function<uint32_t(uint32_t)>& random_below);

// A uniform value in [0, n) from getrandom(2).
uint32_t RandomBelow(uint32_t n);

// Relabels the open file or directory `fd` as system_u:object_r:<type>:<level> when SELinux
// is enabled; returns what it did, or "SELinux off" (and then changes nothing).
Result<std::string> LabelVmFile(int fd, std::string_view type, std::string_view level);

// LabelVmFile on a directory and every regular file directly in it (the vTPM's state
// directory, whose files from an earlier run carry that run's pair). Symlinks are left alone.
Result<std::string> LabelVmDir(int dir_fd, std::string_view type, std::string_view level);

// Makes every socket this process creates from now on carry `level` (setsockcreatecon with
// the process's own user, role and type): a constrained child may not use a socket pair of
// the manager's whole range. Returns the context set, or "SELinux off".
Result<std::string> CreateSocketsAtLevel(std::string_view level);

// The context `context` with its level replaced by `level` ("u:r:t:s0-s0:c0.c1023", "s0:c1,c2"
// -> "u:r:t:s0:c1,c2"). None if `context` has fewer than four fields.
std::optional<std::string> WithLevel(std::string_view context, std::string_view level);

// True when the host runs SELinux (enabled, enforcing or permissive).
bool SelinuxEnabled();

}  // namespace vmm
