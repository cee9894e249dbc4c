// EK provisioning of a vTPM (ARCHITECTURE.md §6): create the TCG default EKs, have the host vTPM
// CA certify them, and store the certificates at the standard NV indices, where a guest
// finds them as on a physical TPM (`tpm2_nvread 0x01c00002`, `tpm2_getekcertificate`).
//
//   ASSIGN_OR_RETURN(EsysContext esys, OpenEsys(std::move(data_fd)));
//   ASSIGN_OR_RETURN(HostCa ca, EnsureHostCa(ca_dir));
//   ASSIGN_OR_RETURN(auto eks, ProvisionEks(esys.get(), ca, {.vm_id = "vm-1"}));
//
// All functions borrow `esys` (an ESYS context on the vTPM, e.g. OpenEsys) and use
// password sessions with empty auth: the platform hierarchy as a fresh libtpms has it,
// and the endorsement hierarchy as a freshly provisioned TPM has it.
//
// NV index attributes (as a platform manufacturer sets them for EK certificates, TCG PC
// Client Platform TPM Profile / EK Credential Profile §2.2.1.5): PPWRITE, WRITEDEFINE,
// PPREAD, OWNERREAD, AUTHREAD, NO_DA, PLATFORMCREATE; defined under TPM_RH_PLATFORM, written
// in chunks of at most TPM_PT_NV_BUFFER_MAX, then TPM2_NV_WriteLock'd: with WRITEDEFINE the
// certificate cannot be rewritten, only the platform can delete the index.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "vtpm/provision/ek_cert.h"
#include "vtpm/provision/ek_template.h"
#include "vtpm/provision/host_ca.h"

namespace vmm::vtpm {

inline constexpr TPMA_NV kEkCertNvAttributes =
    TPMA_NV_PPWRITE | TPMA_NV_WRITEDEFINE | TPMA_NV_PPREAD | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD |
    TPMA_NV_NO_DA | TPMA_NV_PLATFORMCREATE;  // TPM_NT_ORDINARY

struct ProvisionOptions {
  std::string vm_id = {};  // goes into the certificate subject; empty: empty subject
  std::vector<EkKind> kinds = {EkKind::kRsa2048, EkKind::kEccP256};
  // false: a TPM that has any of the EK certificate indices is refused and left alone.
  // true: existing indices are undefined (platform auth) and provisioned anew.
  bool force = false;
};

struct ProvisionedEk {
  EkKind kind;
  uint32_t nv_index;
  std::vector<uint8_t> cert_der;
  std::string public_pem;  // the EK public key (SubjectPublicKeyInfo PEM)
};

// Checks every requested index before changing anything. Already provisioned and !force:
// an ErrorKind::kInvalidArgument Error naming the index. With force, an index is undefined
// just before its new certificate is stored: a failure in between leaves that kind
// unprovisioned (run again with force).
Result<std::vector<ProvisionedEk>> ProvisionEks(ESYS_CONTEXT* esys, const HostCa& ca,
                                                const ProvisionOptions& options);

// The DER certificate at the kind's standard NV index (TPM2_NV_ReadPublic, then
// TPM2_NV_Read with the index's own empty auth). ErrorKind::kNotFound if not provisioned;
// an index without TPMA_NV_PLATFORMCREATE (an owner could define one there) is an Error.
// The bytes are not checked here: VerifyEkCertificate does that.
Result<std::vector<uint8_t>> ReadEkCertificate(ESYS_CONTEXT* esys, EkKind kind);

// Recreates the EK from its template (TPM2_CreatePrimary in the endorsement hierarchy
// gives the same key for the same seed), flushes it, returns its public key as PEM.
Result<std::string> ReadEkPublic(ESYS_CONTEXT* esys, EkKind kind);

// The manufacturer, vendor string and firmware version the TPM reports.
Result<TpmIdentity> ReadTpmIdentity(ESYS_CONTEXT* esys);

}  // namespace vmm::vtpm
