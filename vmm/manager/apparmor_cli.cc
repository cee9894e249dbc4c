#include "vmm/manager/apparmor_cli.h"

#include <cstdio>

#include "vmm/manager/apparmor_profile.h"

namespace vmm {

AppArmorCli::AppArmorCli(CLI::App& app) {
  CLI::App* apparmor = app.add_subcommand("apparmor", "AppArmor profiles of a VM's processes");
  apparmor->require_subcommand(1);
  profile_ = apparmor->add_subcommand(
      "profile",
      "Print one VM's AppArmor profiles (vmm-ID-vcpu, vmm-ID-blkN, vmm-ID-rng0, vmm-ID-vsock0, "
      "vmm-ID-vtpm) as "
      "`vmm run --apparmor` generates them; paths are used as given (absolute, normal)");
  profile_->footer("Exit status: 0 printed; 2 a refused id, path or flag.");
  profile_->add_option("--id", id_, "The VM's id in the profile names: 1-32 of [a-z0-9]")
      ->required();
  profile_->add_option("--disk", disks_, "A disk image (blk0, blk1, ... in order)")
      ->type_name("PATH");
  profile_
      ->add_option("--disk-socket", disk_sockets_,
                   "The listening socket of the disk of the same position (standalone)")
      ->type_name("PATH");
  profile_->add_flag("--rng", rng_, "A virtio-rng device (rng0)");
  profile_
      ->add_option("--vsock-dir", vsock_dir_,
                   "A virtio-vsock device (vsock0) with its unix sockets in this directory")
      ->type_name("DIR");
  profile_->add_flag("--tpm", tpm_, "A vTPM");
  profile_->add_option("--tpm-state", tpm_state_, "The vTPM's state directory")->type_name("DIR");
  profile_->add_option("--tpm-key", tpm_key_, "The vTPM's key file (standalone)")
      ->type_name("FILE");
  profile_->add_option("--tpm-socket", tpm_sockets_, "A standalone vTPM's listening socket")
      ->type_name("PATH");
}

int AppArmorCli::Run() {
  AppArmorVm vm;
  vm.id = id_;
  if (disk_sockets_.size() > disks_.size()) {
    std::fprintf(stderr, "vmm: error: more --disk-socket than --disk\n");
    return 2;
  }
  for (size_t i = 0; i < disks_.size(); ++i) {
    vm.devices.push_back({.name = "blk" + std::to_string(i),
                          .role = "device-blk",
                          .image = disks_[i],
                          .socket = i < disk_sockets_.size() ? disk_sockets_[i] : ""});
  }
  if (rng_) vm.devices.push_back({.name = "rng0", .role = "device-rng"});
  if (!vsock_dir_.empty()) {
    vm.devices.push_back({.name = "vsock0", .role = "device-vsock", .socket_dir = vsock_dir_});
  }
  vm.vtpm = tpm_ || !tpm_state_.empty();
  vm.tpm_state_dir = tpm_state_;
  vm.tpm_key_file = tpm_key_;
  vm.tpm_sockets = tpm_sockets_;
  auto text = VmAppArmorProfiles(vm);
  if (!text) {
    std::fprintf(stderr, "vmm: error: %s\n", text.error().ToString().c_str());
    return 2;
  }
  std::fputs(text->c_str(), stdout);
  return 0;
}

}  // namespace vmm
