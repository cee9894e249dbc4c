#include "vmm/manager/launch_check.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <span>

#include "base/sha256.h"
#include "sandbox/confine.h"
#include "sandbox/landlock.h"
#include "vmm/manager/exit_status.h"

namespace vmm {
namespace {

Result<std::string> ImageDigest(std::span<const uint8_t> bytes) {
  std::string digest = Sha256Hex(bytes);
  if (digest.empty()) return Error(ErrorKind::kInternal, "launch policy: SHA-256 failed (OpenSSL)");
  return digest;
}

// The path with symlinks followed, as the policy's disk rules compare it; a path that does not
// resolve is kept as given (CheckDiskImages refuses it later with its own message).
std::string Resolved(const std::string& path) {
  std::unique_ptr<char, decltype(&free)> real(realpath(path.c_str(), nullptr), &free);
  return real ? std::string(real.get()) : path;
}

}  // namespace

Result<policy::LaunchRequest> LaunchRequestFor(const VmConfig& cfg, const BootPlan& plan) {
  policy::LaunchRequest r;
  ASSIGN_OR_RETURN(r.kernel_sha256, ImageDigest(plan.kernel_bytes));
  if (!cfg.initramfs.empty()) {
    ASSIGN_OR_RETURN(r.initramfs_sha256, ImageDigest(plan.initrd_bytes));
  }
  r.cmdline = cfg.cmdline;
  r.cpus = cfg.cpus;
  r.memory = cfg.memory;
  switch (cfg.tpm.mode) {
    case TpmConfig::Mode::kOff:
      r.tpm = policy::LaunchRequest::Tpm::kOff;
      break;
    case TpmConfig::Mode::kEphemeral:
      r.tpm = policy::LaunchRequest::Tpm::kEphemeral;
      break;
    case TpmConfig::Mode::kPersistent:
      r.tpm = policy::LaunchRequest::Tpm::kPersistent;
      break;
  }
  r.kvm_compat_on = plan.kvm_compat;
  for (const DiskConfig& d : cfg.disks) r.disks.push_back({Resolved(d.path), d.readonly});
  r.rng = cfg.rng;
  r.vsock = cfg.vsock.has_value();
  r.selinux_enforcing = sandbox::SelinuxEnforcing();
  auto abi = sandbox::LandlockAbi();
  r.landlock_abi = abi ? *abi : 0;
  return r;
}

Result<policy::LaunchPolicy> LoadLaunchPolicy(const std::string& path) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> text,
                   ReadFileLimited(path, policy::kMaxLaunchPolicyBytes, "launch policy"));
  auto parsed = policy::ParseLaunchPolicy(
      std::string_view(reinterpret_cast<const char*>(text.data()), text.size()));
  if (!parsed) return parsed.error().Wrap("'" + path + "'");
  return parsed;
}

Result<LaunchDecision> DecideLaunch(const std::string& policy_flag, const VmConfig& cfg,
                                    const BootPlan& plan) {
  LaunchDecision d;
  d.policy_path = policy_flag;
  if (d.policy_path.empty()) {
    struct stat st {};
    if (stat(policy::kDefaultLaunchPolicyPath, &st) != 0 && errno == ENOENT) {
      std::fprintf(stderr,
                   "vmm: no launch policy (no --policy and no %s): the VM is not "
                   "checked against one\n",
                   policy::kDefaultLaunchPolicyPath);
      return d;
    }
    d.policy_path = policy::kDefaultLaunchPolicyPath;  // exists, or cannot be looked at: read it
  }
  ASSIGN_OR_RETURN(policy::LaunchPolicy p, LoadLaunchPolicy(d.policy_path));
  ASSIGN_OR_RETURN(policy::LaunchRequest request, LaunchRequestFor(cfg, plan));
  d.policy_digest = p.digest;
  d.refusals = policy::CheckLaunch(p, request);
  d.policy = std::move(p);
  return d;
}

int ReportRefusals(const LaunchDecision& d) {
  for (const policy::Refusal& r : d.refusals) {
    std::fprintf(stderr, "vmm: error: launch policy '%s' refuses this VM: %s: %s\n",
                 d.policy_path.c_str(), r.rule.c_str(), r.message.c_str());
  }
  return kExitUsage;
}

}  // namespace vmm
