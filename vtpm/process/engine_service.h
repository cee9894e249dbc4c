// EngineService: TpmService over the process's TpmEngine (libtpms).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<TpmEngine> engine, TpmEngine::Create(&store));
//   EngineService tpm(*engine, key, VmId::FromName(vm_name));
//
// Power: the engine is running once Create returns (swtpm's `--flags not-need-init`), so
// a data command works before any CMD_INIT; CMD_INIT on a running TPM is a platform reset
// (TPMLIB_Terminate + TPMLIB_MainInit, like QEMU's INIT at every VM reset), CMD_STOP powers
// it off until the next CMD_INIT. Before a reset or power-off, if the last data command
// was not TPM2_Shutdown, TPM2_Shutdown(SU_STATE) (or SU_CLEAR if that fails) is sent, as
// swtpm does, so a host-side restart is an orderly shutdown for the TPM (no DA penalty).
//
// State blobs (CMD_GET/SET_STATEBLOB) are sealed with `key` for `vm_id`
// (vtpm/state/sealed_format.h: AES-256-GCM, the blob kind and VM id authenticated):
// plaintext TPM state never leaves the process, whatever PTM_STATE_FLAG_DECRYPTED asks.
// A blob that fails its check is refused with TPM_DECRYPT_ERROR and the reason. The
// TPM 2.0 savestate blob is always empty. GET_STATEBLOB with offset 0 seals afresh;
// a nonzero offset continues the blob sealed last for that type (one nonce per blob).
//
// Ownership: borrows `engine` (must outlive the service); holds its own copy of `key`.
#pragma once

#include <array>
#include <optional>

#include "vtpm/engine/tpm_engine.h"
#include "vtpm/process/tpm_service.h"
#include "vtpm/state/sealed_format.h"

namespace vmm::vtpm {

class EngineService : public TpmService {
 public:
  EngineService(TpmEngine& engine, const Key& key, VmId vm_id);

  bool running() const override;
  PtmStatus Init(uint32_t flags) override;
  void Stop() override;
  std::vector<uint8_t> Execute(std::span<const uint8_t> command, uint8_t locality) override;
  uint32_t MaxCommandSize() const override;
  PtmStatus Cancel() override;
  Established GetEstablished() override;
  PtmStatus ResetEstablished(uint8_t locality) override;
  PtmStatus HashStart() override;
  PtmStatus HashData(std::span<const uint8_t> data) override;
  PtmStatus HashEnd() override;
  PtmStatus StoreVolatile() override;
  StateBlob GetStateBlob(swtpm::BlobType type, uint32_t offset) override;
  PtmStatus SetStateBlob(swtpm::BlobType type, uint32_t flags,
                         std::span<const uint8_t> blob) override;
  uint32_t ConfigFlags() const override;
  BufferSize SetBufferSize(uint32_t wanted) override;
  Info GetInfo(uint64_t flags) override;

 private:
  void MaybeSendShutdown();

  TpmEngine& engine_;
  Key key_;
  VmId vm_id_;
  uint32_t last_command_ = 0;  // the last data command's code, 0 if none since power-on
  std::array<std::optional<std::vector<uint8_t>>, 2> last_sealed_;  // permanent, volatile
};

}  // namespace vmm::vtpm
