#include "vtpm/protocol/swtpm_protocol.h"

#include <cstdio>
#include <optional>

#include "base/enum_names.h"
#include "base/hex.h"
#include "vtpm/engine/tpm_engine.h"

namespace vmm::vtpm::swtpm {
namespace {

Decoded NeedMore(size_t total) {
  Decoded d;
  d.status = Decoded::kNeedMore;
  d.size = total;
  return d;
}

Decoded Fail(std::string why) {
  Decoded d;
  d.status = Decoded::kError;
  d.error = std::move(why);
  return d;
}

// Each command's name and the body size that follows from its code alone; nullopt for the two
// with a length field.
struct CommandInfo {
  Command command;
  const char* name;
  std::optional<size_t> fixed_body;
};
constexpr CommandInfo kCommands[] = {
    {Command::kGetCapability, "CMD_GET_CAPABILITY", 0},
    {Command::kInit, "CMD_INIT", 4},  // u32 flags
    {Command::kShutdown, "CMD_SHUTDOWN", 0},
    {Command::kGetTpmEstablished, "CMD_GET_TPMESTABLISHED", 0},
    {Command::kSetLocality, "CMD_SET_LOCALITY", 1},  // ptm_loc: u8 loc
    {Command::kHashStart, "CMD_HASH_START", 0},
    {Command::kHashData, "CMD_HASH_DATA", std::nullopt},
    {Command::kHashEnd, "CMD_HASH_END", 0},
    {Command::kCancelTpmCmd, "CMD_CANCEL_TPM_CMD", 0},
    {Command::kStoreVolatile, "CMD_STORE_VOLATILE", 0},
    {Command::kResetTpmEstablished, "CMD_RESET_TPMESTABLISHED", 1},  // ptm_reset_est: u8 loc
    {Command::kGetStateBlob, "CMD_GET_STATEBLOB", 12},               // state_flags, type, offset
    {Command::kSetStateBlob, "CMD_SET_STATEBLOB", std::nullopt},
    {Command::kStop, "CMD_STOP", 0},
    {Command::kGetConfig, "CMD_GET_CONFIG", 0},
    {Command::kSetDataFd, "CMD_SET_DATAFD", 0},
    {Command::kSetBufferSize, "CMD_SET_BUFFERSIZE", 4},  // u32 buffersize
    {Command::kGetInfo, "CMD_GET_INFO", 16},             // u64 flags, u32 offset, u32 pad
    {Command::kLockStorage, "CMD_LOCK_STORAGE", 4},      // u32 retries
};

const CommandInfo* FindCommand(uint32_t code) {
  for (const CommandInfo& info : kCommands) {
    if (static_cast<uint32_t>(info.command) == code) return &info;
  }
  return nullptr;
}

// The two requests that carry the length of their data: where the u32 length sits in the body
// (the data follows it), the most that is accepted and what the data is.
struct LengthField {
  size_t offset;
  uint32_t limit;
  const char* what;
};
std::optional<LengthField> LengthFieldOf(uint32_t code, const DecodeLimits& limits) {
  if (code == static_cast<uint32_t>(Command::kHashData)) {
    return LengthField{0, limits.max_hash_data, "data"};  // u32 length, data
  }
  if (code == static_cast<uint32_t>(Command::kSetStateBlob)) {
    // u32 state_flags, u32 type, u32 length, data
    return LengthField{8, limits.max_state_blob, "state blob"};
  }
  return std::nullopt;
}

constexpr NamedValue<uint32_t> kResultNames[] = {
    {kResSuccess, "TPM_SUCCESS"},
    {kResBadParameter, "TPM_BAD_PARAMETER"},
    {kResFail, "TPM_FAIL"},
    {kResBadOrdinal, "TPM_BAD_ORDINAL"},
    {kResSize, "TPM_SIZE"},
    {kResIoError, "TPM_IOERROR"},
    {kResDecryptError, "TPM_DECRYPT_ERROR"},
    {kResBadLocality, "TPM_BAD_LOCALITY"},
};

constexpr NamedValue<BlobType> kBlobTypeNames[] = {
    {BlobType::kPermanent, "permanent"},
    {BlobType::kVolatile, "volatile"},
    {BlobType::kSaveState, "savestate"},
};

std::optional<BlobType> ParseBlobType(uint32_t v) {
  if (v >= 1 && v <= 3) return static_cast<BlobType>(v);
  return std::nullopt;
}

}  // namespace

std::string CommandName(uint32_t code) {
  if (const CommandInfo* info = FindCommand(code)) return info->name;
  return "CMD_<unknown " + Hex(code) + ">";
}

std::string ResultName(uint32_t res) {
  return std::string(NameOf(kResultNames, res, "TPM_RESULT")) + " (" + Hex(res) + ")";
}

std::string BlobTypeName(BlobType t) {
  if (const char* name = NameOf(kBlobTypeNames, t, nullptr)) return name;
  return "blob type " + Hex(static_cast<uint32_t>(t));
}

Decoded DecodeRequest(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  if (bytes.size() < kCodeSize) return NeedMore(kCodeSize);
  const uint32_t code = *LoadBe<uint32_t>(bytes, 0);
  const std::span<const uint8_t> body = bytes.subspan(kCodeSize);
  const std::string name = CommandName(code);

  size_t body_size = 0;
  const CommandInfo* info = FindCommand(code);
  if (info != nullptr && info->fixed_body) {
    body_size = *info->fixed_body;
  } else if (auto field = LengthFieldOf(code, limits)) {
    const size_t header = field->offset + 4;
    if (body.size() < header) return NeedMore(kCodeSize + header);
    const uint32_t length = *LoadBe<uint32_t>(body, field->offset);
    if (length > field->limit)
      return Fail(name + ": " + std::to_string(length) + " bytes of " + field->what + ", at most " +
                  std::to_string(field->limit) + " are accepted");
    body_size = header + size_t{length};
  } else {
    return Fail("unknown control command " + Hex(code) +
                " (its size is unknown, so the stream cannot be resynchronised)");
  }
  if (body.size() < body_size) return NeedMore(kCodeSize + body_size);
  // SET_LOCALITY / RESET_TPMESTABLISHED carry one byte (ptm_loc.u.req), but QEMU sends the
  // whole union (4 bytes: the locality and 3 zero bytes) in one write. A client waits for
  // each answer, so bytes already queued behind the locality that are exactly three zeros
  // are that padding, not the next request.
  if ((code == static_cast<uint32_t>(Command::kSetLocality) ||
       code == static_cast<uint32_t>(Command::kResetTpmEstablished)) &&
      body.size() >= 4 && body[1] == 0 && body[2] == 0 && body[3] == 0) {
    body_size = 4;
  }

  Decoded d;
  d.status = Decoded::kRequest;
  d.size = kCodeSize + body_size;
  Request& r = d.request;
  r.command = static_cast<Command>(code);
  switch (r.command) {
    case Command::kInit:
      r.init_flags = *LoadBe<uint32_t>(body, 0);
      if (r.init_flags & ~kInitFlagDeleteVolatile)
        return Fail(name + ": unknown init flags " + Hex(r.init_flags));
      break;
    case Command::kSetLocality:
    case Command::kResetTpmEstablished:
      r.locality = body[0];
      break;
    case Command::kHashData:
      r.data.assign(body.begin() + 4, body.begin() + static_cast<ptrdiff_t>(body_size));
      break;
    case Command::kGetStateBlob:
    case Command::kSetStateBlob: {
      r.state_flags = *LoadBe<uint32_t>(body, 0);
      const uint32_t type = *LoadBe<uint32_t>(body, 4);
      auto blob_type = ParseBlobType(type);
      if (!blob_type) return Fail(name + ": unknown blob type " + Hex(type));
      r.blob_type = *blob_type;
      if (r.state_flags & ~(kStateFlagDecrypted | kStateFlagEncrypted))
        return Fail(name + ": unknown state flags " + Hex(r.state_flags));
      if (r.command == Command::kGetStateBlob) {
        r.offset = *LoadBe<uint32_t>(body, 8);
      } else {
        r.data.assign(body.begin() + 12, body.begin() + static_cast<ptrdiff_t>(body_size));
      }
      break;
    }
    case Command::kSetBufferSize:
      r.buffer_size = *LoadBe<uint32_t>(body, 0);
      break;
    case Command::kGetInfo:
      r.info_flags = *LoadBe<uint64_t>(body, 0);
      r.offset = *LoadBe<uint32_t>(body, 8);
      if (*LoadBe<uint32_t>(body, 12) != 0) return Fail(name + ": nonzero padding");
      break;
    case Command::kLockStorage:
      r.retries = *LoadBe<uint32_t>(body, 0);
      break;
    default:
      break;
  }
  return d;
}

Decoded FrameTpmCommand(std::span<const uint8_t> bytes, uint32_t max_size) {
  if (bytes.size() < kTpmHeaderSize) return NeedMore(kTpmHeaderSize);
  const uint32_t size = *LoadBe<uint32_t>(bytes, 2);
  if (size > max_size && size >= kTpmHeaderSize && max_size >= kTpmHeaderSize) {
    // A front end with a buffer of max_size bytes (QEMU's CRB, whose buffer size it
    // negotiated with SET_BUFFERSIZE) sends a longer command truncated to that size. Frame
    // max_size bytes, as swtpm does, and let the TPM answer TPM_RC_COMMAND_SIZE (the header
    // disagrees with the length), so the channel stays in step.
    if (bytes.size() < max_size) return NeedMore(max_size);
    Decoded d;
    d.status = Decoded::kRequest;
    d.size = max_size;
    return d;
  }
  if (size < kTpmHeaderSize || size > max_size)
    return Fail("TPM command of " + std::to_string(size) + " bytes (tag " +
                Hex(*LoadBe<uint16_t>(bytes, 0)) + "), the size must be " +
                std::to_string(kTpmHeaderSize) + ".." + std::to_string(max_size));
  if (bytes.size() < size) return NeedMore(size);
  Decoded d;
  d.status = Decoded::kRequest;
  d.size = size;
  return d;
}

std::vector<uint8_t> EncodeResult(uint32_t res) {
  std::vector<uint8_t> out;
  AppendBe<uint32_t>(out, res);
  return out;
}

std::vector<uint8_t> EncodeCapability(uint32_t caps) {
  std::vector<uint8_t> out;
  AppendBe<uint32_t>(out, kResSuccess);
  AppendBe<uint32_t>(out, caps);
  return out;
}

std::vector<uint8_t> EncodeEstablished(uint32_t res, bool established) {
  std::vector<uint8_t> out;
  AppendBe<uint32_t>(out, res);
  out.insert(out.end(), {static_cast<uint8_t>(established ? 1 : 0), 0, 0, 0});  // bit, padding
  return out;
}

std::vector<uint8_t> EncodeConfig(uint32_t res, uint32_t flags) {
  std::vector<uint8_t> out;
  AppendBe<uint32_t>(out, res);
  AppendBe<uint32_t>(out, flags);
  return out;
}

std::vector<uint8_t> EncodeBufferSize(uint32_t res, const BufferSizes& s) {
  std::vector<uint8_t> out;
  AppendBe<uint32_t>(out, res);
  AppendBe<uint32_t>(out, s.size);
  AppendBe<uint32_t>(out, s.min);
  AppendBe<uint32_t>(out, s.max);
  return out;
}

std::vector<uint8_t> EncodeStateBlob(uint32_t res, uint32_t state_flags,
                                     std::span<const uint8_t> blob) {
  if (res != kResSuccess) blob = {};
  std::vector<uint8_t> out;
  out.reserve(16 + blob.size());
  AppendBe<uint32_t>(out, res);
  AppendBe<uint32_t>(out, state_flags);
  AppendBe<uint32_t>(out, static_cast<uint32_t>(blob.size()));  // totlength
  AppendBe<uint32_t>(out, static_cast<uint32_t>(blob.size()));  // length
  out.insert(out.end(), blob.begin(), blob.end());
  return out;
}

std::vector<uint8_t> EncodeInfo(uint32_t res, uint32_t total_length,
                                std::span<const uint8_t> chunk) {
  std::vector<uint8_t> out;
  AppendBe<uint32_t>(out, res);
  if (res != kResSuccess) return out;
  AppendBe<uint32_t>(out, total_length);
  AppendBe<uint32_t>(out, static_cast<uint32_t>(chunk.size()));
  out.insert(out.end(), chunk.begin(), chunk.end());
  return out;
}

std::vector<uint8_t> EncodeRequest(const Request& r) {
  std::vector<uint8_t> out;
  AppendBe<uint32_t>(out, static_cast<uint32_t>(r.command));
  switch (r.command) {
    case Command::kInit:
      AppendBe<uint32_t>(out, r.init_flags);
      break;
    case Command::kSetLocality:
    case Command::kResetTpmEstablished:
      out.push_back(r.locality);
      break;
    case Command::kHashData:
      AppendBe<uint32_t>(out, static_cast<uint32_t>(r.data.size()));
      out.insert(out.end(), r.data.begin(), r.data.end());
      break;
    case Command::kGetStateBlob:
      AppendBe<uint32_t>(out, r.state_flags);
      AppendBe<uint32_t>(out, static_cast<uint32_t>(r.blob_type));
      AppendBe<uint32_t>(out, r.offset);
      break;
    case Command::kSetStateBlob:
      AppendBe<uint32_t>(out, r.state_flags);
      AppendBe<uint32_t>(out, static_cast<uint32_t>(r.blob_type));
      AppendBe<uint32_t>(out, static_cast<uint32_t>(r.data.size()));
      out.insert(out.end(), r.data.begin(), r.data.end());
      break;
    case Command::kSetBufferSize:
      AppendBe<uint32_t>(out, r.buffer_size);
      break;
    case Command::kGetInfo:
      AppendBe<uint64_t>(out, r.info_flags);
      AppendBe<uint32_t>(out, r.offset);
      AppendBe<uint32_t>(out, 0);
      break;
    case Command::kLockStorage:
      AppendBe<uint32_t>(out, r.retries);
      break;
    default:
      break;
  }
  return out;
}

ResponseFrame FrameResponse(Command command, std::span<const uint8_t> bytes, uint32_t max_blob) {
  ResponseFrame f;
  if (bytes.size() < 4) {
    f.need = command == Command::kGetStateBlob ? 16 : 4;
    return f;
  }
  const uint32_t res = *LoadBe<uint32_t>(bytes, 0);
  auto fixed = [&](size_t ok_size) {
    f.total = res == kResSuccess ? ok_size : 4;
    return f;
  };
  switch (command) {
    case Command::kGetCapability:
      f.total = 8;  // "must always succeed": swtpm always sends both fields
      return f;
    case Command::kGetTpmEstablished:
    case Command::kGetConfig:
      return fixed(8);
    case Command::kSetBufferSize:
      return fixed(16);
    case Command::kGetStateBlob: {
      if (bytes.size() < 16) {
        f.need = 16;
        return f;
      }
      const uint32_t length = *LoadBe<uint32_t>(bytes, 12);
      if (res != kResSuccess) {
        f.total = 16;
      } else if (length > max_blob) {
        f.error = "GET_STATEBLOB answer announces " + std::to_string(length) + " bytes, at most " +
                  std::to_string(max_blob) + " are accepted";
      } else {
        f.total = 16 + size_t{length};
      }
      return f;
    }
    case Command::kGetInfo: {
      if (res != kResSuccess) return fixed(4);
      if (bytes.size() < 12) {
        f.need = 12;
        return f;
      }
      const uint32_t length = *LoadBe<uint32_t>(bytes, 8);
      if (length > kMaxInfoChunk) {
        f.error = "GET_INFO answer announces " + std::to_string(length) + " bytes";
      } else {
        f.total = 12 + size_t{length};
      }
      return f;
    }
    default:
      f.total = 4;
      return f;
  }
}

}  // namespace vmm::vtpm::swtpm
