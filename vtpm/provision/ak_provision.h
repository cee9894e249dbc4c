// AK provisioning of a vTPM (ARCHITECTURE.md §6, README "Attestation key"): the AK is the
// primary key of ak_template.h in the endorsement hierarchy. The host CA certifies it only
// after the credential protocol showed that the TPM holding the RSA EK also holds a key of the
// AK's Name: the CA makes a credential for the AK's Name under the EK (credential.h, in
// software), the vTPM recovers it with TPM2_ActivateCredential, and the two must be equal.
// The certificate goes to kAkCertNvIndex with the EK certificates' attributes, so the manager
// and a guest read it like an EK certificate (`tpm2_nvread 0x01c101c0`).
//
//   ASSIGN_OR_RETURN(ProvisionedAk ak, ProvisionAk(esys.get(), ca, {.vm_id = "vm-1"}));
//   ASSIGN_OR_RETURN(std::vector<uint8_t> der, ReadAkCertificate(esys.get()));
//
// All functions borrow `esys` and use the empty auth values of a provisioned vTPM (platform
// and endorsement hierarchies; the EK's PolicySecret(TPM_RH_ENDORSEMENT) with it).
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "vtpm/provision/ak_template.h"
#include "vtpm/provision/ek_provision.h"
#include "vtpm/provision/esys_steps.h"
#include "vtpm/provision/host_ca.h"

namespace vmm::vtpm {

// In the platform-created NV range (0x01C00000-0x01FFFFFF, TCG "Registry of Reserved TPM 2.0
// Handles and Localities"), in the 0x01C1xxxx block where Google's vTPM also keeps its AK
// certificates (0x01C10000, 0x01C10002), at an offset clear of theirs.
inline constexpr uint32_t kAkCertNvIndex = 0x01c101c0;

struct ProvisionedAk {
  uint32_t nv_index = kAkCertNvIndex;
  std::vector<uint8_t> public_area;  // TPMT_PUBLIC as marshalled
  std::vector<uint8_t> name;         // 00 0b || SHA-256(public_area)
  std::vector<uint8_t> cert_der;
  std::string public_pem;  // SubjectPublicKeyInfo
};

// Whether kAkCertNvIndex is defined.
Result<bool> AkProvisioned(ESYS_CONTEXT* esys);

// The AK recreated from its template, loaded (flushed when the PrimaryKey goes).
Result<PrimaryKey> CreateAk(ESYS_CONTEXT* esys);

// The CA's credential challenge and the vTPM's answer for `ak` (loaded) and the RSA 2048 EK:
// MakeCredential for `ak_name_for_challenge` (normally the AK's own Name), ActivateCredential
// with the AK and the EK, and a comparison. A mismatch or a refused activation is a kProtocol
// Error.
Result<void> ProveAkResidency(ESYS_CONTEXT* esys, const PrimaryKey& ak,
                              std::span<const uint8_t> ak_name_for_challenge);

// Already provisioned and !options.force: kInvalidArgument, nothing changed. Otherwise the
// challenge above, then the AK certificate (options.vm_id in its subject), stored at
// kAkCertNvIndex (replacing an existing one with force).
Result<ProvisionedAk> ProvisionAk(ESYS_CONTEXT* esys, const HostCa& ca,
                                  const ProvisionOptions& options);

// The DER certificate at kAkCertNvIndex (kNotFound if not provisioned; not verified here:
// VerifyAkCertificate does that).
Result<std::vector<uint8_t>> ReadAkCertificate(ESYS_CONTEXT* esys);

// The AK recreated and described: its public area, Name and public key.
Result<ProvisionedAk> ReadAkPublic(ESYS_CONTEXT* esys);

}  // namespace vmm::vtpm
