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
#include <string>
#include <vector>

#include "base/result.h"
#include "vtpm/state/sealed_state.h"

namespace vmm::vtpm {

// TPM 2.0 Part 2 §6 (constants) and §6.6 (TPM_RC), the few the engine itself uses.
inline constexpr uint16_t kTpmStNoSessions = 0x8001;
inline constexpr uint16_t kTpmStSessions = 0x8002;
inline constexpr uint32_t kTpmRcSuccess = 0x000;
inline constexpr uint32_t kTpmRcInitialize = 0x100;   // RC_VER1 + 0x000
inline constexpr uint32_t kTpmRcFailure = 0x101;      // RC_VER1 + 0x001
inline constexpr uint32_t kTpmRcCommandSize = 0x142;  // RC_VER1 + 0x042
inline constexpr uint32_t kTpmCcStartup = 0x144;
inline constexpr uint32_t kTpmCcShutdown = 0x145;
inline constexpr size_t kTpmHeaderSize = 10;  // tag u16, size u32, code u32
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
  // buffer_size() (at most kMaxTpmCommandSize), or whose header commandSize differs from its length
  // is answered with TPM_RC_COMMAND_SIZE without reaching libtpms. Every other byte string reaches
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
  uint8_t locality() const;

  // ---- Power and state (swtpm's control channel, vtpm/protocol/, vtpm/process/) ----
  // Create powers the TPM on at once (TPMLIB_MainInit), so existing callers need no extra
  // step. PowerOff is TPMLIB_Terminate (swtpm CMD_STOP); PowerOn is TPMLIB_MainInit again
  // (CMD_INIT after a STOP), which picks up state given to SetState. While off, Execute
  // and the TPM_IO_* calls below fail.
  bool running() const { return initialized_; }
  Result<void> PowerOn();  // an error if already running
  void PowerOff();
  bool has_store() const;

  // The state libtpms would write for `kind` (TPMLIB_GetState): while running, marshalled
  // from the live TPM (volatile = TPMLIB_VolatileAll_Store); while off, what SetState gave
  // it or the store holds. The plaintext never leaves the caller's SecretBytes.
  Result<SecretBytes> GetState(BlobKind kind);
  // TPMLIB_SetState: only while powered off; libtpms checks that it can unmarshal the blob
  // and keeps it for the next PowerOn, which then writes the permanent state to the store
  // (libtpms commits NV after loading a given state).
  Result<void> SetState(BlobKind kind, std::span<const uint8_t> plaintext);
  // TPMLIB_VolatileAll_Store, written to the store as BlobKind::kVolatile (swtpm
  // CMD_STORE_VOLATILE). Without a store it is computed and dropped.
  Result<void> StoreVolatile();
  // Removes a stored volatile state (swtpm PTM_INIT_FLAG_DELETE_VOLATILE).
  Result<void> DeleteVolatile();

  // PC Client PTP: the TPM access register's tpmEstablishment bit (TPM_IO_TpmEstablished_*).
  // Resetting it needs locality 3 or 4; `locality` is used for that call only.
  Result<bool> TpmEstablished();
  Result<void> ResetTpmEstablished(uint8_t locality);

  // The H-CRTM sequence (_TPM_Hash_Start / _Data / _End, TPM 2.0 Part 1 §34.3): PCR 0
  // is extended with the digest of the data at locality 4.
  Result<void> HashStart();
  Result<void> HashData(std::span<const uint8_t> data);
  Result<void> HashEnd();

  // TPMLIB_SetBufferSize: the largest command and response (TPM_PT_MAX_COMMAND_SIZE).
  // wanted == 0 queries; another value is clamped to [min, max] and only accepted while
  // powered off (as swtpm does). Execute refuses commands above the current size.
  struct BufferSizes {
    uint32_t size = 0;
    uint32_t min = 0;
    uint32_t max = 0;
  };
  Result<BufferSizes> SetBufferSize(uint32_t wanted);
  uint32_t buffer_size() const { return buffer_size_; }

  // TPMLIB_GetInfo (JSON text, swtpm CMD_GET_INFO).
  Result<std::string> Info(uint64_t flags);

 private:
  TpmEngine() = default;
  Result<void> Init();

  bool initialized_ = false;
  uint32_t buffer_size_ = kMaxTpmCommandSize;
  unsigned char* response_buffer_ = nullptr;  // libtpms (re)allocates it; freed here
  uint32_t response_buffer_size_ = 0;
};

}  // namespace vmm::vtpm
