#include "vmm/manager/policy_cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/unique_fd.h"
#include "policy/launch_policy.h"
#include "vmm/manager/exit_status.h"
#include "vmm/manager/launch_check.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/machine/boot_plan.h"

namespace vmm {

PolicyCli::PolicyCli(CLI::App& app, const AddVmFlags& add_vm_flags, ResolveVm resolve_vm)
    : resolve_vm_(std::move(resolve_vm)) {
  CLI::App* policy = app.add_subcommand(
      "policy", "Launch policies (vmm-launch-policy/1): which VMs vmm run may start");
  policy->require_subcommand(1);
  check_ = policy->add_subcommand(
      "check",
      "Validate a launch policy and, given the VM flags of vmm run, whether it admits that VM; "
      "nothing is started");
  check_->add_option("--policy", policy_path_, "The launch policy file")
      ->type_name("FILE")
      ->required();
  add_vm_flags(check_);
  check_->footer(
      "Exit status: 0 the policy is valid (and admits the VM); 2 it is invalid, refuses the VM "
      "(each rule named on stderr), or bad input.");
  init_ = policy->add_subcommand(
      "init",
      "Write a launch policy that admits exactly the VM given by the flags of vmm run (its "
      "kernel, initramfs, command line, shape, protections and devices), with uid 0 as admin: "
      "a starting point for an operator");
  add_vm_flags(init_);
  init_->add_option("--out", out_path_, "Write the policy to FILE (must not exist)")
      ->type_name("FILE")
      ->required();
  init_->footer("Exit status: 0 written; 2 bad input (flags, kernel, an existing --out).");
}

int PolicyCli::Run() { return check_->parsed() ? Check() : Init(); }

namespace {

// The VM's plan and its LaunchRequest, as vmm run would make them before starting.
Result<policy::LaunchRequest> RequestFor(const VmConfig& cfg) {
  ASSIGN_OR_RETURN(BootPlan plan, PlanBoot(SpecFromConfig(cfg), kvm::DetectFlavor()));
  return LaunchRequestFor(cfg, plan);
}

}  // namespace

int PolicyCli::Check() {
  auto p = LoadLaunchPolicy(policy_path_);
  if (!p) return Fail(p.error());
  auto vm = resolve_vm_();
  if (!vm) return Fail(vm.error());
  if (!vm->has_value()) {
    std::printf("launch policy '%s' (sha256 %s) is valid: %zu kernel(s), %zu role binding(s)\n",
                policy_path_.c_str(), p->digest.c_str(), p->kernels.size(), p->roles.size());
    return 0;
  }
  auto request = RequestFor(**vm);
  if (!request) return Fail(request.error());
  LaunchDecision d{policy_path_, p->digest, policy::CheckLaunch(*p, *request), *p};
  if (!d.refusals.empty()) return ReportRefusals(d);
  std::printf("launch policy '%s' (sha256 %s) admits this VM\n", policy_path_.c_str(),
              p->digest.c_str());
  return 0;
}

int PolicyCli::Init() {
  auto vm = resolve_vm_();
  if (!vm) return Fail(vm.error());
  if (!vm->has_value()) {
    return Fail(
        InvalidArgument("vmm policy init: give the VM (--kernel, ... or --config) as "
                        "to vmm run"));
  }
  auto request = RequestFor(**vm);
  if (!request) return Fail(request.error());
  const std::string text = policy::PolicyForRequest(*request);
  // The policy must be one we accept and that admits the VM, or it is no starting point.
  auto parsed = policy::ParseLaunchPolicy(text);
  if (!parsed) return Fail(Error(ErrorKind::kInternal, parsed.error().message()));
  if (!policy::CheckLaunch(*parsed, *request).empty()) {
    return Fail(Error(ErrorKind::kInternal, "vmm policy init: the policy refuses its own VM"));
  }
  UniqueFd out(open(out_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out.valid()) {
    return Fail(Error(ErrorKind::kInvalidArgument, "--out '" + out_path_ + "'", errno));
  }
  if (write(out.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      fsync(out.get()) != 0) {
    const int err = errno;
    unlink(out_path_.c_str());
    return Fail(Error(ErrorKind::kSystem, "writing --out '" + out_path_ + "'", err));
  }
  std::fprintf(stderr,
               "vmm policy init: wrote %s (sha256 %s): admits exactly this VM; uid 0 is admin\n",
               out_path_.c_str(), parsed->digest.c_str());
  return 0;
}

}  // namespace vmm
