#include "vmm/manager/vtpm_cli.h"

#include <cstdio>

#include "vmm/manager/config.h"
#include "vmm/manager/exit_status.h"

namespace vmm {
VtpmCli::VtpmCli(CLI::App& app) {
  // A subcommand inherits its parent's footer, which is `run`'s exit status: each says its own.
  CLI::App* vtpm =
      app.add_subcommand("vtpm", "Provision a VM's vTPM and export its endorsement key");
  vtpm->require_subcommand(1);
  vtpm->footer("Exit status: that of the subcommand; 2 bad flags.");
  provision_ = vtpm->add_subcommand(
      "provision",
      "Create the EKs (TCG default templates, RSA 2048 and ECC P-256), sign their certificates "
      "with the host's vTPM CA (created on first use) and store them at the standard NV "
      "indices 0x01c00002 and 0x01c0000a; then the attestation key (AK, an ECC P-256 "
      "endorsement primary of a fixed template): the CA certifies it once the vTPM has "
      "recovered a credential made for it under the RSA EK (TPM2_ActivateCredential), and the "
      "certificate goes to NV index 0x01c101c0");
  provision_->footer(
      "Exit status: 0 the EKs were created, certified and stored, and the AK too; 1 the vTPM "
      "process or the host failed, or the vTPM did not pass the AK's credential challenge; 2 "
      "bad input: flags, a state directory that is a symlink or that group or "
      "others may write, a bad key file, a --ca inside the VM's state directory (all refused "
      "before anything is created), or EK or AK certificates already there without --force.");
  provision_->add_option("--vm", vm_, "The VM's vTPM, as given to vmm run --tpm")
      ->type_name("state=DIR,key=FILE")
      ->required();
  provision_
      ->add_option("--ca", provision_request_.ca_dir,
                   "The host's vTPM CA directory (vtpm-ca.key, vtpm-ca.crt); keep it "
                   "outside every VM's directory")
      ->type_name("DIR")
      ->capture_default_str();
  provision_->add_option("--vm-id", provision_request_.vm_id,
                         "Name in the certificates' subject (CN=vmm vTPM EK <vm-id>, CN=vmm "
                         "vTPM AK <vm-id>)");
  provision_->add_flag("--force", provision_request_.force,
                       "Replace EK and AK certificates that are already there");
  ek_ = vtpm->add_subcommand(
      "ek",
      "Read the EK and AK certificates back from the vTPM's NV, check them against the CA and "
      "the keys the vTPM recreates, and export the public keys and certificates (PEM); the AK's "
      "Name is in the report");
  ek_->footer(
      "Exit status: 0 the certificates verified and were exported (a vTPM provisioned before "
      "AKs has none: reported); 1 the vTPM process or the host failed, or a certificate is "
      "missing or does not verify; 2 bad input (flags, paths, "
      "file modes, no CA).");
  ek_->add_option("--vm", vm_, "The VM's vTPM, as given to vmm run --tpm")
      ->type_name("state=DIR,key=FILE")
      ->required();
  ek_->add_option("--ca", ek_request_.ca_dir, "The host's vTPM CA directory")
      ->type_name("DIR")
      ->capture_default_str();
  ek_->add_option("--out", ek_request_.out_dir,
                  "Write ek-rsa2048.{pub,crt}.pem, ek-eccp256.{pub,crt}.pem and ak.{pub,crt}.pem "
                  "here instead of printing them")
      ->type_name("DIR");
}

int VtpmCli::Run() {
  VmConfig parsed;
  if (auto r = ApplyFlag(parsed, "tpm", vm_); !r) {
    return Fail(InvalidArgument("--vm: " + r.error().message()));
  }
  if (provision_->parsed()) {
    provision_request_.tpm = parsed.tpm;
    auto report = ProvisionVtpm(provision_request_);
    if (!report) return Fail(report.error());
    std::fprintf(stderr, "%s", report->c_str());
    return 0;
  }
  ek_request_.tpm = parsed.tpm;
  std::string report;
  auto out = ExportEk(ek_request_, &report);
  std::fprintf(stderr, "%s", report.c_str());
  if (!out) return Fail(out.error());
  std::printf("%s", out->c_str());
  return 0;
}

}  // namespace vmm
