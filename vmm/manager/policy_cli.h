// `vmm policy check|init` on the command line (ARCHITECTURE.md §9): validate a launch policy
// and a VM against it, or write the policy that admits exactly one VM.
//
//   RunFlags vm;                                   // main.cc's VM flags, as for `vmm run`
//   PolicyCli policy(app, [&](CLI::App* s) { add_vm_flags(s, vm); }, resolve_vm);
//   app.parse(argc, argv);
//   if (policy.parsed()) return policy.Run();
//
// Ownership: PolicyCli holds the parsed values; `app` owns the subcommands and must outlive it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "base/result.h"
#include "vmm/manager/config.h"

namespace vmm {

class PolicyCli {
 public:
  // Adds `vmm run`'s VM flags (--config, --kernel, ...) to a subcommand.
  using AddVmFlags = std::function<void(CLI::App*)>;
  // The VM those flags describe, validated; nullopt when none was given.
  using ResolveVm = std::function<Result<std::optional<VmConfig>>()>;

  PolicyCli(CLI::App& app, const AddVmFlags& add_vm_flags, ResolveVm resolve_vm);
  PolicyCli(const PolicyCli&) = delete;
  PolicyCli& operator=(const PolicyCli&) = delete;

  bool parsed() const { return check_->parsed() || init_->parsed(); }
  // Runs the parsed subcommand; returns the process's exit status (0 admitted or written,
  // 2 refused, invalid or bad input, 1 a host error).
  int Run();

 private:
  int Check();
  int Init();

  CLI::App* check_ = nullptr;
  CLI::App* init_ = nullptr;
  ResolveVm resolve_vm_;
  std::string policy_path_;
  std::string out_path_;
};

}  // namespace vmm
