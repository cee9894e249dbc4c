// `vmm vtpm provision` and `vmm vtpm ek`: the operator's side of a VM's vTPM (ARCHITECTURE.md §6).
// Both start the VM's `vmm-vtpm` (confined, as `vmm run --tpm` does) on its sealed state and
// drive it with ESAPI over the manager's data channel (vtpm/tcti).
//
//   provision: the per-host vTPM CA (created on first use, outside any VM's directory), the
//              RSA 2048 and ECC P-256 EKs from the TCG default templates, their certificates
//              signed by the CA and written to the standard NV indices (0x01c00002,
//              0x01c0000a), where `tpm2_nvread` in the guest finds them; then the AK
//              (vtpm/provision/ak_provision.h), certified once the vTPM recovers the CA's
//              credential for it under the RSA EK, its certificate at 0x01c101c0.
//   ek:        reads the certificates back from NV, recreates the EK and AK public keys,
//              checks each certificate against the CA and the key, and exports them.
#pragma once

#include <string>

#include "base/result.h"
#include "vmm/manager/config.h"

namespace vmm {

inline constexpr const char* kDefaultVtpmCaDir = "/var/lib/vmm/vtpm-ca";

struct ProvisionRequest {
  TpmConfig tpm;  // persistent: state=DIR,key=FILE
  std::string ca_dir = kDefaultVtpmCaDir;
  std::string vm_id;   // the EK certificates' subject ("CN=vmm vTPM EK <vm-id>"); may be empty
  bool force = false;  // replace existing EK and AK certificates
};
// Returns a report for the operator, one line per EK and one for the AK.
Result<std::string> ProvisionVtpm(const ProvisionRequest& request);

struct EkExportRequest {
  TpmConfig tpm;
  std::string ca_dir = kDefaultVtpmCaDir;
  std::string out_dir;  // empty: PEM on stdout; else ek-<kind>.{pub,crt}.pem, ak.{pub,crt}.pem
};
// Returns what to print on stdout; fails if a certificate is missing or does not verify.
Result<std::string> ExportEk(const EkExportRequest& request, std::string* report);

}  // namespace vmm
