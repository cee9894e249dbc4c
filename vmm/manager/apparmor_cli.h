// `vmm apparmor profile`: prints the AppArmor profiles `vmm run` would load for a VM
// (ARCHITECTURE.md "AppArmor"), for review, for a host that loads them itself, and for the
// standalone back-ends (a device's --socket, a vTPM's key file and sockets).
//
//   AppArmorCli apparmor(app);   // adds `apparmor profile` to `app`
//   app.parse(argc, argv);
//   if (apparmor.parsed()) return apparmor.Run();
//
// Ownership: AppArmorCli holds the parsed values; `app` owns the subcommand.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace vmm {

class AppArmorCli {
 public:
  explicit AppArmorCli(CLI::App& app);
  AppArmorCli(const AppArmorCli&) = delete;
  AppArmorCli& operator=(const AppArmorCli&) = delete;

  bool parsed() const { return profile_->parsed(); }
  int Run();  // the process's exit status: 0 printed, 2 a refused path or name

 private:
  CLI::App* profile_ = nullptr;
  std::string id_;
  std::vector<std::string> disks_;
  std::vector<std::string> disk_sockets_;
  bool rng_ = false;
  std::string vsock_dir_;
  bool tpm_ = false;
  std::string tpm_state_;
  std::string tpm_key_;
  std::vector<std::string> tpm_sockets_;
};

}  // namespace vmm
