// swtpm's socket protocol (Debian swtpm-dev, /usr/include/swtpm/tpm_ioctl.h "CMD_*"): pure
// framing, parsing and encoding over byte spans, no I/O.
//
//   swtpm::Decoded d = swtpm::DecodeRequest(bytes_so_far, limits);
//   if (d.status == swtpm::Decoded::kRequest) Handle(d.request), consume d.size bytes;
//
// Control channel: a request is a big-endian u32 command code followed by that command's
// fixed-layout body (no length prefix: the size follows from the code, plus a u32 length
// field for HASH_DATA and SET_STATEBLOB). A response is the body only: a big-endian u32
// result (a TPM 1.2 TPM_RESULT, "ptm_res") and, for some commands, more fields. The only
// fd that travels is the data socket of SET_DATAFD (SCM_RIGHTS on the request).
// Data channel: raw TPM 2.0 commands and responses (TPM 2.0 Part 1 §18.2: tag u16,
// size u32, code u32), framed by their size field.
//
// Strictness: since requests carry no length prefix, a request we cannot size (unknown
// code) or whose fields are out of range cannot be skipped; the decoder reports it as a
// protocol error and the caller ends the channel. Values the protocol answers with a
// result code instead (a locality above 4) are decoded and left to the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/bytes.h"  // LoadBe, AppendBe: the protocol is big-endian

namespace vmm::vtpm::swtpm {

// tpm_ioctl.h "enum { CMD_GET_CAPABILITY = 1, ... }".
enum class Command : uint32_t {
  kGetCapability = 0x01,
  kInit = 0x02,
  kShutdown = 0x03,
  kGetTpmEstablished = 0x04,
  kSetLocality = 0x05,
  kHashStart = 0x06,
  kHashData = 0x07,
  kHashEnd = 0x08,
  kCancelTpmCmd = 0x09,
  kStoreVolatile = 0x0a,
  kResetTpmEstablished = 0x0b,
  kGetStateBlob = 0x0c,
  kSetStateBlob = 0x0d,
  kStop = 0x0e,
  kGetConfig = 0x0f,
  kSetDataFd = 0x10,
  kSetBufferSize = 0x11,
  kGetInfo = 0x12,
  kLockStorage = 0x13,
};
// "CMD_SET_STATEBLOB"; "CMD_<unknown 0x...>" for other codes.
std::string CommandName(uint32_t code);
inline std::string CommandName(Command c) { return CommandName(static_cast<uint32_t>(c)); }

// PTM_CAP_* bits of the GET_CAPABILITY answer.
inline constexpr uint32_t kCapInit = 1u << 0;
inline constexpr uint32_t kCapShutdown = 1u << 1;
inline constexpr uint32_t kCapGetTpmEstablished = 1u << 2;
inline constexpr uint32_t kCapSetLocality = 1u << 3;
inline constexpr uint32_t kCapHashing = 1u << 4;
inline constexpr uint32_t kCapCancelTpmCmd = 1u << 5;
inline constexpr uint32_t kCapStoreVolatile = 1u << 6;
inline constexpr uint32_t kCapResetTpmEstablished = 1u << 7;
inline constexpr uint32_t kCapGetStateBlob = 1u << 8;
inline constexpr uint32_t kCapSetStateBlob = 1u << 9;
inline constexpr uint32_t kCapStop = 1u << 10;
inline constexpr uint32_t kCapGetConfig = 1u << 11;
inline constexpr uint32_t kCapSetDataFd = 1u << 12;
inline constexpr uint32_t kCapSetBufferSize = 1u << 13;
inline constexpr uint32_t kCapGetInfo = 1u << 14;
inline constexpr uint32_t kCapSendCommandHeader = 1u << 15;  // never offered: raw commands only
inline constexpr uint32_t kCapLockStorage = 1u << 16;

// Results ("ptm_res"): TPM 1.2 TPM_RESULT values (libtpms tpm_error.h), as swtpm sends them.
inline constexpr uint32_t kResSuccess = 0x00;
inline constexpr uint32_t kResBadParameter = 0x03;  // malformed or out-of-range argument
inline constexpr uint32_t kResFail = 0x09;
inline constexpr uint32_t kResBadOrdinal = 0x0a;  // not allowed now, or not to this channel
inline constexpr uint32_t kResSize = 0x17;
inline constexpr uint32_t kResIoError = 0x1f;
inline constexpr uint32_t kResDecryptError = 0x21;  // a state blob failed its check
inline constexpr uint32_t kResBadLocality = 0x3d;
std::string ResultName(uint32_t res);  // "TPM_BAD_ORDINAL (0xa)"

inline constexpr uint32_t kInitFlagDeleteVolatile = 1u << 0;  // PTM_INIT_FLAG_DELETE_VOLATILE

// PTM_BLOB_TYPE_*; SAVESTATE is TPM 1.2 only (a TPM 2.0 always has an empty one).
enum class BlobType : uint32_t { kPermanent = 1, kVolatile = 2, kSaveState = 3 };
std::string BlobTypeName(BlobType t);
inline constexpr uint32_t kStateFlagDecrypted = 1u << 0;  // request: "plaintext, please"
inline constexpr uint32_t kStateFlagEncrypted = 1u << 1;  // blob is encrypted
inline constexpr uint32_t kConfigFlagFileKey = 1u << 0;
inline constexpr uint32_t kConfigFlagMigrationKey = 1u << 1;

// Size limits. HASH_DATA carries at most ptm_hdata's 4096 bytes per request; a state blob
// at most swtpm's own limit for SET_STATEBLOB (512 KiB); GET_INFO answers at most
// PTM_GETINFO_SIZE bytes per request.
inline constexpr uint32_t kMaxHashData = 4096;
inline constexpr uint32_t kMaxStateBlob = 512 * 1024;
inline constexpr uint32_t kMaxInfoChunk = 3 * 1024;
inline constexpr uint8_t kMaxLocality = 4;

inline constexpr size_t kCodeSize = 4;  // the u32 command code in front of every request

// One decoded control request. Only the fields of its command are meaningful.
struct Request {
  Command command = Command::kGetCapability;
  uint32_t init_flags = 0;   // kInit
  uint8_t locality = 0;      // kSetLocality, kResetTpmEstablished (may exceed 4: answered)
  uint32_t state_flags = 0;  // kGetStateBlob, kSetStateBlob
  BlobType blob_type = BlobType::kPermanent;
  uint32_t offset = 0;        // kGetStateBlob, kGetInfo
  uint32_t buffer_size = 0;   // kSetBufferSize (0: query)
  uint64_t info_flags = 0;    // kGetInfo
  uint32_t retries = 0;       // kLockStorage
  std::vector<uint8_t> data;  // kHashData, kSetStateBlob
};

struct DecodeLimits {
  uint32_t max_state_blob = kMaxStateBlob;  // SET_STATEBLOB length
  uint32_t max_hash_data = kMaxHashData;    // HASH_DATA length
};

struct Decoded {
  enum Status { kNeedMore, kRequest, kError };
  Status status = kNeedMore;
  // kNeedMore: total bytes known to be needed so far (at least this many; more may follow).
  // kRequest: the request's size in bytes, to consume from the stream.
  size_t size = 0;
  Request request;    // kRequest
  std::string error;  // kError: names the command and the rule broken
};

// Looks at the bytes received so far on a control stream (starting at a request
// boundary). Errors: an unknown code, a length above `limits`, unknown INIT flags or
// state flags, an unknown blob type, a nonzero GET_INFO pad.
Decoded DecodeRequest(std::span<const uint8_t> bytes, const DecodeLimits& limits = {});

// The same for the data channel: a TPM command whose header size lies in
// [kTpmHeaderSize, max_size]. kRequest's size is the command's size; `request` is unused.
Decoded FrameTpmCommand(std::span<const uint8_t> bytes, uint32_t max_size);

// ---- Responses (server side) ----
std::vector<uint8_t> EncodeResult(uint32_t res);  // 4 bytes
// GET_CAPABILITY: ptm_cap_n (result 0, u32 caps); read by QEMU as one big-endian u64.
std::vector<uint8_t> EncodeCapability(uint32_t caps);                    // 8 bytes
std::vector<uint8_t> EncodeEstablished(uint32_t res, bool established);  // 8 bytes
std::vector<uint8_t> EncodeConfig(uint32_t res, uint32_t flags);         // 8 bytes
struct BufferSizes {
  uint32_t size = 0;
  uint32_t min = 0;
  uint32_t max = 0;
};
std::vector<uint8_t> EncodeBufferSize(uint32_t res, const BufferSizes& s);  // 16 bytes
// GET_STATEBLOB: result, state flags, total length, length, then the bytes (an error
// still carries the 16-byte header, as swtpm sends it).
std::vector<uint8_t> EncodeStateBlob(uint32_t res, uint32_t state_flags,
                                     std::span<const uint8_t> blob);
// GET_INFO: result, total length, length, then the chunk.
std::vector<uint8_t> EncodeInfo(uint32_t res, uint32_t total_length,
                                std::span<const uint8_t> chunk);

// ---- Requests (client side) ----
std::vector<uint8_t> EncodeRequest(const Request& r);

// How many response bytes follow for `command`, given the bytes read so far: swtpm sends
// only the 4-byte result when a command fails (except GET_STATEBLOB, whose 16-byte header
// always comes, and the fixed 8-byte GET_TPMESTABLISHED). nullopt: need the next fixed part
// first (at most 16 bytes); otherwise the full response size, or an error string.
struct ResponseFrame {
  std::optional<size_t> total;  // nullopt: read `need` bytes first
  size_t need = 4;
  std::string error;
};
ResponseFrame FrameResponse(Command command, std::span<const uint8_t> bytes,
                            uint32_t max_blob = kMaxStateBlob);

}  // namespace vmm::vtpm::swtpm
