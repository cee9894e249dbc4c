// The per-role confinement data: seccomp policy, rlimits, SELinux domain name.
//
//   ASSIGN_OR_RETURN(Policy p, PolicyForRole("device-blk"));
//   RETURN_IF_ERROR(p.Apply({{std::string(kParamImageFd), image_fd}}));
//
// Roles (ARCHITECTURE.md §1): "vcpu" (the VM process), "vcpu-kvm-pvm" (the VM process with the
// kvm_pvm compatibility module on: vcpu plus the ioctls the module makes), "device" (the base every
// vhost-user device backend shares), "device-blk" and "device-rng" (the base plus a few lines
// each), "vtpm". Everything a role needs before confinement (opening /dev/kvm, KVM_CREATE_VCPU,
// KVM_SET_USER_MEMORY_REGION, KVM_SET_CPUID2, opening images) happens before Confine()
// and is deliberately absent here, so the VM's shape, which is measured into PCR 1,
// cannot change once the guest runs.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "sandbox/policy.h"

namespace vmm::sandbox {

// Policy parameters (resolved when the filter is loaded, see PolicyParams).
inline constexpr std::string_view kParamImageFd = "image_fd";         // device-blk
inline constexpr std::string_view kParamStateDirFd = "state_dir_fd";  // vtpm

// The exact open flags the vtpm policy admits for its state files (openat on the state dir).
inline constexpr int kVtpmStateReadFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
inline constexpr int kVtpmStateWriteFlags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW;

inline constexpr std::string_view kVcpuKvmPvmRole = "vcpu-kvm-pvm";
// The manager's own filter once its children run (not a child role, so not in RoleNames();
// PolicyForRole and `vmm sandbox show manager` know it). Parameter $api_socket: the API's
// listening socket, or -1 without one. ARCHITECTURE.md §1.
inline constexpr std::string_view kManagerRole = "manager";

std::vector<std::string> RoleNames();

// The VM process's role: "vcpu-kvm-pvm" when the kvm_pvm compatibility module is on.
std::string_view VcpuRole(bool kvm_compat);

// A role's filter with the parameters to load it with.
struct RoleFilter {
  Policy policy;
  PolicyParams params;
};
// The vtpm filter for a process that holds its state directory as `state_dir_fd` (the
// role's policy, parameter $state_dir_fd = that fd), or none (-1: an ephemeral TPM), whose
// filter has no openat, renameat or unlinkat rule at all and needs no parameter.
Result<RoleFilter> VtpmFilter(int state_dir_fd);

// The role's builder, for callers (tests) that add lines before Build().
Result<PolicyBuilder> BuilderForRole(std::string_view role);
Result<Policy> PolicyForRole(std::string_view role);

// The filter of the manager's API threads (not a process role): parameter $api_socket is the
// listening socket's fd. ARCHITECTURE.md §8.
Result<Policy> ManagerApiThreadPolicy();

// soft = hard = value. Confine never raises a hard limit that is already lower.
struct Rlimit {
  int resource;
  rlim_t value;
};
// The role's limits: always RLIMIT_CORE 0 and a bounded RLIMIT_NOFILE, then per role.
Result<std::vector<Rlimit>> RoleRlimits(std::string_view role);

// The SELinux type of the role's domain, e.g. "vmm_vcpu_t" (the policy module in selinux/
// defines them), and the full exec context "system_u:system_r:vmm_vcpu_t:<level>" where
// level is the per-VM MCS pair, e.g. "s0:c12,c34" (sVirt style).
std::string RoleSelinuxType(std::string_view role);
std::string RoleSelinuxContext(std::string_view role, std::string_view level);

}  // namespace vmm::sandbox
