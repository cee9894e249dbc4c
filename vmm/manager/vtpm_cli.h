// `vmm vtpm provision|ek` on the command line: their flags, help and exit status. The work
// is in vtpm_commands.h.
//
//   VtpmCli vtpm(app);                 // adds `vtpm` and its subcommands to `app`
//   app.parse(argc, argv);
//   if (vtpm.parsed()) return vtpm.Run();
//
// Ownership: VtpmCli holds the parsed values; `app` owns the subcommands and must outlive it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "vmm/manager/vtpm_commands.h"

namespace vmm {

class VtpmCli {
 public:
  explicit VtpmCli(CLI::App& app);
  VtpmCli(const VtpmCli&) = delete;
  VtpmCli& operator=(const VtpmCli&) = delete;

  bool parsed() const { return provision_->parsed() || ek_->parsed(); }
  // Runs the parsed subcommand; returns the process's exit status.
  int Run();

 private:
  CLI::App* provision_ = nullptr;
  CLI::App* ek_ = nullptr;
  std::string vm_;
  ProvisionRequest provision_request_;
  EkExportRequest ek_request_;
};

}  // namespace vmm
