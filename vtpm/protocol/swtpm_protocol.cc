#include "vtpm/protocol/swtpm_protocol.h"

#include <cstdio>

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

// The body size of a request whose size follows from its code alone; nullopt for the two
// with a length field and for unknown codes.
std::optional<size_t> FixedBodySize(uint32_t code) {
  switch (static_cast<Command>(code)) {
    case Command::kGetCapability:
    case Command::kShutdown:
    case Command::kGetTpmEstablished:
    case Command::kHashStart:
    case Command::kHashEnd:
    case Command::kCancelTpmCmd:
    case Command::kStoreVolatile:
    case Command::kStop:
    case Command::kGetConfig:
    case Command::kSetDataFd:
      return 0;
    case Command::kSetLocality:
    case Command::kResetTpmEstablished:
      return 1;  // ptm_loc / ptm_reset_est: u8 loc
    case Command::kInit:
    case Command::kSetBufferSize:
    case Command::kLockStorage:
      return 4;  // u32 flags / buffersize / retries
    case Command::kGetStateBlob:
      return 12;  // state_flags, type, offset
    case Command::kGetInfo:
      return 16;  // u64 flags, u32 offset, u32 pad
    case Command::kHashData:
    case Command::kSetStateBlob:
      break;
  }
  return std::nullopt;
}

std::optional<BlobType> ParseBlobType(uint32_t v) {
  if (v >= 1 && v <= 3) return static_cast<BlobType>(v);
  return std::nullopt;
}

}  // namespace

std::string CommandName(uint32_t code) {
  switch (static_cast<Command>(code)) {
    case Command::kGetCapability:
      return "CMD_GET_CAPABILITY";
    case Command::kInit:
      return "CMD_INIT";
    case Command::kShutdown:
      return "CMD_SHUTDOWN";
    case Command::kGetTpmEstablished:
      return "CMD_GET_TPMESTABLISHED";
    case Command::kSetLocality:
      return "CMD_SET_LOCALITY";
    case Command::kHashStart:
      return "CMD_HASH_START";
    case Command::kHashData:
      return "CMD_HASH_DATA";
    case Command::kHashEnd:
      return "CMD_HASH_END";
    case Command::kCancelTpmCmd:
      return "CMD_CANCEL_TPM_CMD";
    case Command::kStoreVolatile:
      return "CMD_STORE_VOLATILE";
    case Command::kResetTpmEstablished:
      return "CMD_RESET_TPMESTABLISHED";
    case Command::kGetStateBlob:
      return "CMD_GET_STATEBLOB";
    case Command::kSetStateBlob:
      return "CMD_SET_STATEBLOB";
    case Command::kStop:
      return "CMD_STOP";
    case Command::kGetConfig:
      return "CMD_GET_CONFIG";
    case Command::kSetDataFd:
      return "CMD_SET_DATAFD";
    case Command::kSetBufferSize:
      return "CMD_SET_BUFFERSIZE";
    case Command::kGetInfo:
      return "CMD_GET_INFO";
    case Command::kLockStorage:
      return "CMD_LOCK_STORAGE";
  }
  return "CMD_<unknown " + Hex(code) + ">";
}

std::string ResultName(uint32_t res) {
  const char* name = nullptr;
  switch (res) {
    case kResSuccess:
      name = "TPM_SUCCESS";
      break;
    case kResBadParameter:
      name = "TPM_BAD_PARAMETER";
      break;
    case kResFail:
      name = "TPM_FAIL";
      break;
    case kResBadOrdinal:
      name = "TPM_BAD_ORDINAL";
      break;
    case kResSize:
      name = "TPM_SIZE";
      break;
    case kResIoError:
      name = "TPM_IOERROR";
      break;
    case kResDecryptError:
      name = "TPM_DECRYPT_ERROR";
      break;
    case kResBadLocality:
      name = "TPM_BAD_LOCALITY";
      break;
    default:
      name = "TPM_RESULT";
      break;
  }
  return std::string(name) + " (" + Hex(res) + ")";
}

std::string BlobTypeName(BlobType t) {
  switch (t) {
    case BlobType::kPermanent:
      return "permanent";
    case BlobType::kVolatile:
      return "volatile";
    case BlobType::kSaveState:
      return "savestate";
  }
  return "blob type " + Hex(static_cast<uint32_t>(t));
}

Decoded DecodeRequest(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  if (bytes.size() < kCodeSize) return NeedMore(kCodeSize);
  const uint32_t code = *LoadBe<uint32_t>(bytes, 0);
  const std::span<const uint8_t> body = bytes.subspan(kCodeSize);
  const std::string name = CommandName(code);

  size_t body_size = 0;
  if (auto fixed = FixedBodySize(code)) {
    body_size = *fixed;
  } else if (code == static_cast<uint32_t>(Command::kHashData)) {
    if (body.size() < 4) return NeedMore(kCodeSize + 4);
    const uint32_t length = *LoadBe<uint32_t>(body, 0);
    if (length > limits.max_hash_data)
      return Fail(name + ": " + std::to_string(length) + " bytes of data, at most " +
                  std::to_string(limits.max_hash_data) + " are accepted");
    body_size = 4 + size_t{length};
  } else if (code == static_cast<uint32_t>(Command::kSetStateBlob)) {
    if (body.size() < 12) return NeedMore(kCodeSize + 12);
    const uint32_t length = *LoadBe<uint32_t>(body, 8);
    if (length > limits.max_state_blob)
      return Fail(name + ": a state blob of " + std::to_string(length) + " bytes, at most " +
                  std::to_string(limits.max_state_blob) + " are accepted");
    body_size = 12 + size_t{length};
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
