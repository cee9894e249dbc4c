// The launch policy (ARCHITECTURE.md §9): the host operator's statement of which VMs this host
// may start and who may manage them, in the file format "vmm-launch-policy/1" (JSON; schema in
// policy/schema/, examples in policy/examples/). Pure: no files, no host probing; the manager
// fills a LaunchRequest with the facts and asks CheckLaunch.
//
//   ASSIGN_OR_RETURN(LaunchPolicy p, ParseLaunchPolicy(text));   // strict; p.digest = SHA-256
//   for (const Refusal& r : CheckLaunch(p, request)) ... r.rule ... r.message ...
//   ApiRole role = RoleFor(p, uid, gid, supplementary_gids);
//
// The format, key by key (every key below is required unless marked optional; unknown keys,
// repeated keys, wrong types and out-of-range values are errors):
//   "format": "vmm-launch-policy/1"
//   "id": text                                   optional, for people
//   "kernels": [{"sha256": HEX, "name": text?}]  kernel images by the SHA-256 `vmm measure`
//                                                prints for the PCR 4 kernel event (the file's
//                                                bytes); at least one
//   "initramfs": {"allow_none": bool, "images": [{"sha256": HEX, "name": text?}]}
//   "cmdline": {"allow_any": bool, "params": [PATTERN]}
//        Applies to the user's command line (--cmdline) only. The parameters the VMM adds
//        itself (the kvm_pvm module's, ARCHITECTURE.md §5) are governed by
//        require.kvm_compat, not by these patterns. The line is split as the kernel splits
//        it (spaces outside double quotes; quotes around a value are not part of it), and
//        every token must match a pattern: "key" (the bare key, no value), "key=value"
//        (exactly), "key=*" (any value). Keys compare with '-' and '_' as the same character,
//        as the kernel compares them. A "--" and the init arguments after it are tokens too.
//   "limits": {"max_cpus": N >= 1, "max_memory": bytes (integer) or "512M" / "4G" (K,M,G,T),
//              "cgroup": {...} optional, below}
//   "limits.cgroup": the VM's cgroup v2 limits (ARCHITECTURE.md §9), applied where the host
//        delegates a cgroup to the manager; every key optional, at least one:
//          "cpu_max": CPUs as a number (1.5: one and a half CPUs' time, period 100 ms), or
//                     the kernel's cpu.max text "QUOTA PERIOD" in microseconds
//                     (PERIOD 1000..1000000, QUOTA 1000..65535 * PERIOD)
//          "memory_max": bytes or a size, as max_memory; at least max_memory +
//                     kCgroupMemoryOverhead: guest RAM is charged to the VM's cgroup along
//                     with its processes' own memory
//          "pids_max": N, at least max_cpus + devices.disks.max_count + kCgroupPidsBase: the
//                     VM's tasks (threads count) are its vCPU threads, its processes, and a few
//                     more; at most 4194304
//   "require": {"tpm": "required-measured-boot" | "optional",
//               "selinux": "enforcing" | "any",        the host's SELinux, at launch
//               "landlock_abi_min": N >= 0,             the host kernel's Landlock ABI, 0 none
//               "kvm_compat": "allowed" | "forbidden"}  the kvm_pvm compatibility module
//   "devices": {"rng": bool, "vsock": bool (optional, absent: false),
//               "disks": {"max_count": N, "images": [{"path": ABS, "read_only": bool}]}}
//        A disk is admitted when an entry matches its path (as the manager resolved it:
//        absolute, symlinks followed): an exact path, a directory ending in "/" (any file
//        below it), or "*" (any file); and when that entry says read_only true, the disk
//        must be read-only. The first matching entry decides.
//   "roles": [{"uid": N | "gid": N, "role": "admin"|"operator"|"tenant"|"auditor",
//              "vm": NAME-OR-UUID (optional: the binding holds only on that VM)}]  optional
//
// Ownership: plain values throughout; nothing refers to the parsed text after parsing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::policy {

inline constexpr std::string_view kLaunchPolicyFormat = "vmm-launch-policy/1";
inline constexpr size_t kMaxLaunchPolicyBytes = 1 << 20;
// Where `vmm run` looks when --policy is not given (README.md, "Launch policy").
inline constexpr const char* kDefaultLaunchPolicyPath = "/etc/vmm/launch-policy.json";

// Roles on the management API (what each may do is the API's). For RoleFor, privilege runs
// admin > operator > tenant > auditor > none.
enum class ApiRole { kNone, kAdmin, kOperator, kTenant, kAuditor };
std::string_view RoleName(ApiRole role);  // "admin", ..., "none"

struct ImageDigest {
  std::string sha256;  // 64 lowercase hex digits
  std::string name;    // optional, shown in messages
};

struct CmdlinePattern {
  enum class Kind { kBare, kExact, kAnyValue };
  Kind kind = Kind::kBare;
  std::string key;    // as written
  std::string value;  // with kExact
  std::string text;   // the pattern as written
};

struct DiskRule {
  enum class Match { kExact, kUnder, kAny };
  Match match = Match::kExact;
  std::string path;  // absolute; with kUnder it ends in '/'
  bool read_only = false;
};

enum class TpmRequirement { kOptional, kRequiredMeasuredBoot };

// limits.cgroup's floors: what the VMM's own processes need beside guest RAM and vCPUs.
inline constexpr uint64_t kCgroupMemoryOverhead = 64ull << 20;
inline constexpr uint64_t kCgroupPidsBase = 8;
inline constexpr uint64_t kCgroupPidsLimit = 4194304;  // the kernel's PID_MAX_LIMIT
inline constexpr uint64_t kCgroupCpuPeriodDefault = 100000;

// The VM's cgroup v2 limits: each unset one is left at the kernel's "max".
struct CgroupLimits {
  struct Cpu {
    uint64_t quota_us = 0;
    uint64_t period_us = kCgroupCpuPeriodDefault;
  };
  std::optional<Cpu> cpu;
  std::optional<uint64_t> memory_max;  // bytes
  std::optional<uint64_t> pids_max;
};
// cpu.max's text: "QUOTA PERIOD".
std::string CpuMaxText(const CgroupLimits::Cpu& cpu);

struct RoleBinding {
  std::optional<uint32_t> uid;  // exactly one of uid, gid
  std::optional<uint32_t> gid;
  ApiRole role = ApiRole::kNone;
  std::optional<std::string> vm;  // only on the VM of this name or UUID (a tenant's own VM)
};

struct LaunchPolicy {
  std::string digest;  // SHA-256 (hex) of the exact bytes parsed: what PCR 1 records
  std::string id;
  std::vector<ImageDigest> kernels;
  bool initramfs_allow_none = false;
  std::vector<ImageDigest> initramfs;
  bool cmdline_allow_any = false;
  std::vector<CmdlinePattern> cmdline_params;
  uint32_t max_cpus = 0;
  uint64_t max_memory = 0;
  std::optional<CgroupLimits> cgroup;  // limits.cgroup
  TpmRequirement tpm = TpmRequirement::kRequiredMeasuredBoot;
  bool selinux_enforcing = true;
  int landlock_abi_min = 0;
  bool kvm_compat_allowed = false;
  bool rng_allowed = false;
  bool vsock_allowed = false;  // devices.vsock, optional
  uint32_t max_disks = 0;
  std::vector<DiskRule> disk_images;
  std::vector<RoleBinding> roles;
};

// Plain facts about one VM and the host it would start on, filled by the manager.
struct LaunchRequest {
  enum class Tpm { kOff, kEphemeral, kPersistent };
  struct Disk {
    std::string path;  // as resolved by the manager (absolute, symlinks followed)
    bool read_only = false;
  };
  std::string kernel_sha256;     // hex
  std::string initramfs_sha256;  // hex; empty: no initramfs
  std::string cmdline;           // the user's --cmdline, without the VMM's additions
  uint32_t cpus = 1;
  uint64_t memory = 0;  // bytes
  Tpm tpm = Tpm::kOff;
  bool kvm_compat_on = false;
  std::vector<Disk> disks;
  bool rng = false;
  bool vsock = false;
  // The host:
  bool selinux_enforcing = false;
  int landlock_abi = 0;  // 0: no Landlock
};

struct Refusal {
  std::string rule;     // stable, dotted: "kernels", "cmdline.params", "limits.max_cpus", ...
  std::string message;  // for people
};

// Strict: kInvalidArgument naming the key (with its path, "devices.disks.images[2].path").
Result<LaunchPolicy> ParseLaunchPolicy(std::string_view json);

// Every rule the request breaks, in the order of the format above; empty: admitted.
std::vector<Refusal> CheckLaunch(const LaunchPolicy& policy, const LaunchRequest& request);

// The role of a peer: a binding for its uid wins over any binding for its groups (so a uid
// can be given less than its groups would give it); among the bindings of its groups (gid and
// supplementary) the most privileged wins, as group memberships add up. kNone: no binding.
// Bindings with a `vm` hold only on the VM whose --name or --uuid it names.
ApiRole RoleFor(const LaunchPolicy& policy, uint32_t uid, uint32_t gid,
                std::span<const uint32_t> supplementary_gids, std::string_view vm_name = "",
                std::string_view vm_uuid = "");

// A policy (JSON text, ending in a newline) that admits exactly this VM: its kernel and
// initramfs, each token of its command line, its vCPUs and memory as limits (and cgroup limits
// sized for them: its vCPUs' time, its memory + 256 MiB, its vCPUs + disks + 16 tasks), its
// protections as requirements (the host's SELinux and Landlock as found), its devices and disks;
// and the role admin for uid 0. ParseLaunchPolicy accepts it and CheckLaunch admits `request`.
std::string PolicyForRequest(const LaunchRequest& request);

// The kernel's split of a command line (quotes grouped, quotes around a value dropped), as
// CheckLaunch applies it: each token as {key, value}, value nullopt for a bare key.
struct CmdlineToken {
  std::string key;
  std::optional<std::string> value;
};
std::vector<CmdlineToken> SplitCmdline(std::string_view cmdline);

}  // namespace vmm::policy
