// TPM 2.0 command and response framing (TPM 2.0 Part 1 §18, Part 2 §10): the big-endian
// header (tag, size, command or response code), password sessions, and the few structures the
// platform side sends (PCR selections, digest lists). Pure code over bytes: the manager builds
// the platform's commands with it (PCR bank allocation, the measurements of measured boot),
// and reads the answers with TpmReader, which never reads past what the TPM sent.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/tpm_alg.h"

namespace vmm::vtpm {

inline constexpr uint16_t kTpmStNoSessions = 0x8001;
inline constexpr uint16_t kTpmStSessions = 0x8002;
inline constexpr uint32_t kTpmCcStartup = 0x144;
inline constexpr uint32_t kTpmCcPcrAllocate = 0x12B;
inline constexpr uint32_t kTpmCcPcrExtend = 0x182;
inline constexpr uint32_t kTpmCcPcrRead = 0x17E;
inline constexpr uint32_t kTpmCcGetCapability = 0x17A;
inline constexpr uint32_t kTpmRhPlatform = 0x4000000C;
inline constexpr uint32_t kTpmRsPw = 0x40000009;
inline constexpr uint32_t kTpmCapPcrs = 5;
using ::vmm::kTpmAlgSha1;  // the algorithm table is base/tpm_alg.h's
using ::vmm::kTpmAlgSha256;
using ::vmm::kTpmAlgSha384;
using ::vmm::kTpmAlgSha512;
inline constexpr size_t kTpmHeaderBytes = 10;
inline constexpr unsigned kPcrCount = 24;

// Digest size of a TPM hash algorithm, or 0 for one this code does not know.
size_t TpmDigestSize(uint16_t alg);
// "sha256" etc., or "0x...." for another algorithm.
std::string TpmAlgName(uint16_t alg);

// Appends big-endian fields; Finish() writes the size into the header.
class TpmCommandBuilder {
 public:
  TpmCommandBuilder(uint16_t tag, uint32_t code);
  TpmCommandBuilder& U8(uint8_t v);
  TpmCommandBuilder& U16(uint16_t v);
  TpmCommandBuilder& U32(uint32_t v);
  TpmCommandBuilder& Bytes(std::span<const uint8_t> b);
  // The authorization area with one empty password session (TPM_RS_PW, no nonce,
  // continueSession clear, empty HMAC), for a handle whose auth is the empty password.
  TpmCommandBuilder& EmptyPasswordSession();
  std::vector<uint8_t> Finish();

 private:
  std::vector<uint8_t> bytes_;
};

// Bounded big-endian reads over a response; every read fails (nullopt) past the end.
class TpmReader {
 public:
  explicit TpmReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  std::optional<uint8_t> U8();
  std::optional<uint16_t> U16();
  std::optional<uint32_t> U32();
  std::optional<std::span<const uint8_t>> Bytes(size_t n);
  size_t remaining() const { return bytes_.size() - pos_; }
  size_t offset() const { return pos_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

// A response, checked: at least a header, its size field equal to what arrived, response code
// success. For a command sent with sessions, the parameter area is bounded by parameterSize
// (the sessions' answers after it are skipped); otherwise it is the rest. `what` names the
// command in errors, with the response code in hex.
Result<std::span<const uint8_t>> TpmResponseParameters(std::span<const uint8_t> response,
                                                       bool with_sessions, const std::string& what);

// The same check for a command whose answer carries nothing the caller needs.
Result<void> TpmResponseOk(std::span<const uint8_t> response, bool with_sessions,
                           const std::string& what);

// One bank of a PCR selection: which of PCRs 0..23 are selected.
struct PcrBank {
  uint16_t alg = 0;
  uint32_t pcrs = 0;  // bit n = PCR n
};

// TPML_PCR_SELECTION with sizeofSelect 3 (24 PCRs).
void AppendPcrSelection(TpmCommandBuilder& b, std::span<const PcrBank> banks);
// Reads a TPML_PCR_SELECTION (at most 16 banks, sizeofSelect up to 32, PCRs above 23 ignored).
std::optional<std::vector<PcrBank>> ReadPcrSelection(TpmReader& r);

}  // namespace vmm::vtpm
