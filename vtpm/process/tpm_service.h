// TpmService: what the swtpm protocol server (swtpm_server.h) asks of a TPM. The server
// owns the protocol (framing, who may send what, when the TPM must be running); a service
// only does the work. EngineService (engine_service.h) is the real one over libtpms;
// FakeTpmService (tpm_service_fake.h) serves tests and fuzzers.
//
//   EngineService tpm(*engine, key, vm_id);
//   SwtpmServer server(tpm, log);
//
// Results are swtpm's "ptm_res" codes (swtpm_protocol.h kRes*), as they go on the wire,
// with a reason for the log when they are not kResSuccess.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vtpm/protocol/swtpm_protocol.h"

namespace vmm::vtpm {

struct PtmStatus {
  uint32_t result = swtpm::kResSuccess;
  std::string why;  // set when result != kResSuccess

  bool ok() const { return result == swtpm::kResSuccess; }
  static PtmStatus Success() { return {}; }
  static PtmStatus Failure(uint32_t result, std::string why) { return {result, std::move(why)}; }
};

class TpmService {
 public:
  virtual ~TpmService() = default;

  // True between a successful Init (or a service that starts powered on) and Stop.
  virtual bool running() const = 0;
  // CMD_INIT: power the TPM on, or reset it if it is running (_TPM_Init). `flags`:
  // swtpm::kInitFlagDeleteVolatile.
  virtual PtmStatus Init(uint32_t flags) = 0;
  // CMD_STOP / CMD_SHUTDOWN: power off.
  virtual void Stop() = 0;

  // One TPM command at `locality` (0..4). Only called while running, with a command
  // of kTpmHeaderSize..MaxCommandSize() bytes whose size field matches. Always returns a
  // complete TPM response (failures become TPM error responses).
  virtual std::vector<uint8_t> Execute(std::span<const uint8_t> command, uint8_t locality) = 0;
  // The bound of the data channel: the negotiated buffer size.
  virtual uint32_t MaxCommandSize() const = 0;

  virtual PtmStatus Cancel() = 0;
  struct Established {
    PtmStatus status;
    bool bit = false;
  };
  virtual Established GetEstablished() = 0;
  virtual PtmStatus ResetEstablished(uint8_t locality) = 0;
  virtual PtmStatus HashStart() = 0;
  virtual PtmStatus HashData(std::span<const uint8_t> data) = 0;
  virtual PtmStatus HashEnd() = 0;
  virtual PtmStatus StoreVolatile() = 0;

  // State blobs as they leave and enter the process: sealed (never plaintext), `flags`
  // the swtpm state flags to report (kStateFlagEncrypted). GetStateBlob is only called
  // while running, SetStateBlob only while stopped.
  struct StateBlob {
    PtmStatus status;
    uint32_t flags = 0;
    std::vector<uint8_t> bytes;
  };
  virtual StateBlob GetStateBlob(swtpm::BlobType type, uint32_t offset) = 0;
  virtual PtmStatus SetStateBlob(swtpm::BlobType type, uint32_t flags,
                                 std::span<const uint8_t> blob) = 0;

  virtual uint32_t ConfigFlags() const = 0;  // swtpm::kConfigFlag*
  struct BufferSize {
    PtmStatus status;
    swtpm::BufferSizes sizes;
  };
  // 0 queries; another value only while stopped (the server checks).
  virtual BufferSize SetBufferSize(uint32_t wanted) = 0;
  struct Info {
    PtmStatus status;
    std::string text;
  };
  virtual Info GetInfo(uint64_t flags) = 0;
};

}  // namespace vmm::vtpm
