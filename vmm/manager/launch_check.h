// The launch policy in the manager (ARCHITECTURE.md §9): the facts of a VM and of this host
// as policy/ checks them, and the decision `vmm run` and `vmm measure` make before anything
// is created.
//
//   ASSIGN_OR_RETURN(LaunchDecision d, DecideLaunch(flags.launch_policy, cfg, plan));
//   if (!d.refusals.empty()) return ReportRefusals(d);   // one line per refusal, exit 2
//   ... MeasureVm(cfg, plan, d.policy_digest) ...          // PCR 1 names the policy
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "policy/launch_policy.h"
#include "vmm/manager/config.h"
#include "vmm/vm/machine/boot_plan.h"

namespace vmm {

// The VM as the policy sees it: the SHA-256 of the kernel and initramfs bytes the plan read
// (the digests of vmm measure's PCR 4 and 9 events), the user's --cmdline, the shape, the
// devices (disk paths made absolute with symlinks followed), and this host's SELinux mode and
// Landlock ABI.
Result<policy::LaunchRequest> LaunchRequestFor(const VmConfig& cfg, const BootPlan& plan);

// Reads and parses a policy file (at most kMaxLaunchPolicyBytes).
Result<policy::LaunchPolicy> LoadLaunchPolicy(const std::string& path);

struct LaunchDecision {
  std::string policy_path;    // empty: no launch policy
  std::string policy_digest;  // SHA-256 hex of the file; empty with no policy
  std::vector<policy::Refusal> refusals;
  std::optional<policy::LaunchPolicy> policy;  // the parsed policy (its API roles)
};

// `policy_flag`: --policy, or empty for the host default (policy::kDefaultLaunchPolicyPath),
// which is used if it exists; without either, the VM has no launch policy (a line on stderr
// says so). A policy that does not parse is an error, never "no policy".
Result<LaunchDecision> DecideLaunch(const std::string& policy_flag, const VmConfig& cfg,
                                    const BootPlan& plan);

// "vmm: error: launch policy 'P' refuses this VM: <rule>: <message>" on stderr per refusal;
// returns kExitUsage.
int ReportRefusals(const LaunchDecision& decision);

}  // namespace vmm
