// The manager's vTPM process: one `vmm-vtpm` per VM (ARCHITECTURE.md §1, §6), started by
// fork+exec into new namespaces with only its fds (SpawnRole), holding libtpms and the VM's
// sealed state. Three channels, all swtpm protocol over socketpairs:
//   - the manager's control and data channels (the platform: INIT, locality 3, Startup;
//     later the measurements of measured boot). When the manager's control channel closes,
//     the vTPM process exits.
//   - the VM process's data channel, which the vTPM process itself pins to locality 0 and
//     to data commands only: a compromised VM process cannot reset the TPM, change locality
//     or forge what the platform measured.
//
//   ASSIGN_OR_RETURN(VtpmProcess tpm, StartVtpmProcess(cfg.tpm));   // single-threaded caller
//   RETURN_IF_ERROR(StartupTpm(tpm));        // before the VM process exists
//   ... pass tpm.guest to vmm-vcpu (--tpm-fd), poll tpm.pidfd ...
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/manager/child_process.h"
#include "vmm/manager/config.h"
#include "vtpm/protocol/tpm_command.h"

namespace vmm {

struct VtpmProcess {
  ManagedChild child;  // its log lines are prefixed "vmm: vtpm: "
  UniqueFd control;    // the manager's control channel (platform)
  UniqueFd data;       // the manager's data channel, at locality 3 after StartupTpm
  UniqueFd guest;      // the VM process's data channel: hand it over, then close it here
};

// Bad input, checked before anything is created (vmm run --tpm, vmm vtpm provision): for a
// persistent vTPM, a state directory that exists must be a directory itself, not a
// symbolic link (the vTPM process's Landlock rule opens it), and one that neither group nor
// others may write (they could swap its state files); a key file that exists must pass
// vtpm::ReadKeyFile's checks. `flag` names the option in messages ("--tpm", "--vm").
Result<void> CheckTpmPaths(const TpmConfig& tpm, const std::string& flag);

// Opens the state directory (created 0700 if missing; refused as CheckTpmPaths says, on
// the opened fd) and the key (created 0600 if missing) for a persistent vTPM, and spawns
// `vmm-vtpm`. Bad paths are kInvalidArgument.
// With `apparmor_vm_id`, the process is exec'd into its VM's profile vmm-<id>-vtpm.
Result<VtpmProcess> StartVtpmProcess(const TpmConfig& tpm, const std::string& apparmor_vm_id = "");

// The same in two steps, for a manager that drops its privileges in between (ARCHITECTURE.md
// §1): the state directory and the key (read into a pipe) are opened first; a state directory
// made here is given to `owner` (the uid the vTPM process will run as; -1: left as made).
struct VtpmFiles {
  UniqueFd state_dir;  // none for an ephemeral vTPM
  UniqueFd key_pipe;
};
Result<VtpmFiles> OpenVtpmFiles(const TpmConfig& tpm, uid_t owner = static_cast<uid_t>(-1),
                                gid_t group = static_cast<gid_t>(-1));
Result<VtpmProcess> StartVtpmProcess(const TpmConfig& tpm, VtpmFiles files,
                                     const std::string& apparmor_vm_id = "");

// As platform firmware does before the OS: CMD_INIT, locality 3 (the S-CRTM's, ARCHITECTURE.md
// §4), TPM2_Startup(SU_CLEAR); the PCR banks of measured boot (SHA-256 and SHA-384, every other
// bank off: allocated with platform authority and the TPM restarted when they differ); then the
// platform hierarchy disabled. Any answer but success is an error naming it.
Result<void> StartupTpm(VtpmProcess& tpm);

// The PCR banks allocated (TPM2_GetCapability(TPM_CAP_PCRS)).
Result<std::vector<vtpm::PcrBank>> ReadPcrAllocation(VtpmProcess& tpm);

// TPM2_PCR_Extend at the manager's locality (3 after StartupTpm): one digest per bank.
struct PcrDigest {
  uint16_t alg = 0;
  std::vector<uint8_t> digest;
};
Result<void> ExtendPcr(VtpmProcess& tpm, unsigned pcr, std::span<const PcrDigest> digests);

// TPM2_PCR_Read of one PCR in one bank.
Result<std::vector<uint8_t>> ReadPcr(VtpmProcess& tpm, uint16_t alg, unsigned pcr);

// A TPM 2.0 command on the manager's data channel; the response (bounded) or an error.
Result<std::vector<uint8_t>> TpmCommand(VtpmProcess& tpm, std::span<const uint8_t> command);

// Orderly end: closes the manager's channels (the vTPM process then exits with status 0),
// waits up to `grace_ms`, SIGKILLs it otherwise, reaps it and forwards the rest of its log.
// Empty when it exited with 0, else a line saying how it ended.
std::string StopVtpmProcess(VtpmProcess& tpm, int grace_ms = 2000);

}  // namespace vmm
