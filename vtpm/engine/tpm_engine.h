// TpmEngine: the TPM 2.0 of one VM, libtpms in-process, its permanent state sealed on disk.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<TpmEngine> tpm, TpmEngine::Create(&store));
//   RETURN_IF_ERROR(tpm->Startup());  ASSIGN_OR_RETURN(auto rsp, tpm->Execute(command));
//
// libtpms keeps all of its state in globals, so at most one engine exists per process
// (vmm-vtpm serves exactly one VM); a second Create while one is alive fails cleanly.
//
// State: libtpms's NVRAM callbacks (TPMLIB_RegisterCallbacks) are routed to the store:
// "permall" (NV indices, seeds, hierarchy auth) is BlobKind::kPermanent and is written on
// every NV commit; "volatilestate" is BlobKind::kVolatile (read once at init if present).
// libtpms never opens a file of its own. A state that fails its check makes Create (or
// Reset) fail with the store's error: the TPM is never silently re-manufactured. Without a
// store, the permanent state lives in this process's memory only (it survives Reset, not
// the process): for tests and throwaway VMs.
//
// Ownership and threads: the engine borrows `store`, which must outlive it. Execute,
// Startup and Reset must be called from one thread at a time; Cancel may be called from
// any thread while Execute runs (libtpms checks the flag in long operations only).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "vmm/common/result.h"
#include "vtpm/state/sealed_state.h"

namespace vmm::vtpm {

// TPM 2.0 Part 2 §6 (constants) and §6.6 (TPM_RC), the few the engine itself uses.
inline constexpr uint16_t kTpmStNoSessions = 0x8001;
inline constexpr uint16_t kTpmStSessions = 0x8002;
inline constexpr uint32_t kTpmRcSuccess = 0x000;
inline constexpr uint32_t kTpmRcInitialize = 0x100;   // RC_VER1 + 0x000
inline constexpr uint32_t kTpmRcCommandSize = 0x142;  // RC_VER1 + 0x042
inline constexpr uint32_t kTpmCcStartup = 0x144;
inline constexpr size_t kTpmHeaderSize = 10;          // tag u16, size u32, code u32
// The largest command or response the engine accepts: libtpms's default buffer, and
// the size of the CRB data buffer the guest sees.
inline constexpr size_t kMaxTpmCommandSize = 4096;

// A 10-byte TPM 2.0 response header alone (Part 1 §18.2: a response with an error code
// carries no parameters), tag TPM_ST_NO_SESSIONS.
std::vector<uint8_t> TpmErrorResponse(uint32_t rc);

// The response code of a response (bytes 6..9, big-endian); nullopt if it is too short.
std::optional<uint32_t> TpmResponseCode(std::span<const uint8_t> response);

class TpmEngine {
 public:
  // `store` may be null (volatile only). TPMLIB_ChooseTPMVersion(2), callbacks,
  // TPMLIB_MainInit. Fails if another engine is alive in this process, or the state
  // cannot be loaded.
  static Result<std::unique_ptr<TpmEngine>> Create(SealedStateStore* store);
  ~TpmEngine();  // TPMLIB_Terminate
  TpmEngine(const TpmEngine&) = delete;
  TpmEngine& operator=(const TpmEngine&) = delete;

  // TPM2_Startup(TPM_SU_CLEAR), or TPM_SU_STATE if !clear (Part 3 §9.3), as the platform
  // firmware does before the guest runs. Only TPM_RC_SUCCESS is accepted: TPM_RC_INITIALIZE
  // (already started) is an error, because then someone else started the TPM before the
  // VMM measured the boot, and the PCRs no longer describe it. Reset() first to restart.
  Result<void> Startup(bool clear = true);

  // One command, one response. A command shorter than 10 bytes, longer than
  // kMaxTpmCommandSize, or whose header commandSize differs from its length is answered
  // with TPM_RC_COMMAND_SIZE without reaching libtpms. Every other byte string reaches
  // TPMLIB_Process, which answers with a TPM error. An Error only if the engine is unusable
  // (a failed Reset) or libtpms returns no well-formed response.
  Result<std::vector<uint8_t>> Execute(std::span<const uint8_t> command);

  // Platform reset (a VM reboot, PC Client PTP: _TPM_Init): TPMLIB_Terminate, then
  // TPMLIB_MainInit, which reloads the permanent state. Startup must follow.
  Result<void> Reset();

  // TPMLIB_CancelCommand: asks a long-running command to stop (TPM_RC_CANCELED).
  void Cancel();

  // The locality libtpms sees for the following commands (0..4; the guest's CRB is 0,
  // the VMM as S-CRTM uses 3). Startup at locality 3 sets PCR 0's last byte to 3
  // (PC Client PFP §2.3.4 "StartupLocality"); the default is 0.
  Result<void> SetLocality(uint8_t locality);

 private:
  TpmEngine() = default;
  Result<void> Init();

  bool initialized_ = false;
  unsigned char* response_buffer_ = nullptr;  // libtpms (re)allocates it; freed here
  uint32_t response_buffer_size_ = 0;
};

}  // namespace vmm::vtpm
