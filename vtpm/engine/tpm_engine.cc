#include "vtpm/engine/tpm_engine.h"

#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_nvfilename.h>
#include <libtpms/tpm_tis.h>
#include <openssl/crypto.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "base/bytes.h"
#include "base/hex.h"

namespace vmm::vtpm {
namespace {

// libtpms's callbacks carry no context pointer, so the engine's state for them is global,
// like libtpms's own. Only touched by the thread running libtpms (see the header).
std::atomic<bool> g_engine_alive{false};
SealedStateStore* g_store = nullptr;
std::vector<uint8_t> g_memory_permanent;  // no store: permall kept here across Reset
std::optional<Error> g_nv_error;          // the first failure seen by a callback
uint8_t g_locality = 0;

void RecordError(Error e) {
  if (!g_nv_error) g_nv_error = std::move(e);
}

// "savestate" is TPM 1.2 only; anything else is a libtpms we do not know.
std::optional<BlobKind> KindForName(const char* name) {
  if (name == nullptr) return std::nullopt;
  if (std::strcmp(name, TPM_PERMANENT_ALL_NAME) == 0) return BlobKind::kPermanent;
  if (std::strcmp(name, TPM_VOLATILESTATE_NAME) == 0) return BlobKind::kVolatile;
  return std::nullopt;
}

TPM_RESULT NvInit() { return TPM_SUCCESS; }

// Returns TPM_RETRY for "no such state" (libtpms then manufactures a fresh TPM, or skips
// the volatile state), TPM_FAIL for a state that exists but cannot be used.
TPM_RESULT NvLoad(unsigned char** data, uint32_t* length, uint32_t tpm_number, const char* name) {
  *data = nullptr;
  *length = 0;
  std::optional<BlobKind> kind = KindForName(name);
  if (tpm_number != 0 || !kind) {
    RecordError(Error(ErrorKind::kInternal, std::string("libtpms asked for unknown state '") +
                                                (name ? name : "(null)") + "'"));
    return TPM_FAIL;
  }
  std::vector<uint8_t> memory_copy;
  std::span<const uint8_t> bytes;
  std::optional<SealedStateStore::Loaded> loaded;
  if (g_store == nullptr) {
    if (*kind != BlobKind::kPermanent || g_memory_permanent.empty()) return TPM_RETRY;
    bytes = g_memory_permanent;
  } else {
    auto r = g_store->Load(*kind);
    if (!r) {
      RecordError(
          r.error().Wrap("loading the TPM's " + std::string(BlobKindName(*kind)) + " state"));
      return TPM_FAIL;
    }
    if (!r->has_value()) return TPM_RETRY;
    loaded = std::move(*r);
    bytes = loaded->plaintext.span();
  }
  if (bytes.empty() || bytes.size() > std::numeric_limits<uint32_t>::max()) {
    RecordError(Error(ErrorKind::kProtocol, "the TPM's state is empty or too large"));
    return TPM_FAIL;
  }
  // libtpms takes the buffer and releases it with free(); it does not cleanse it.
  auto* out = static_cast<unsigned char*>(std::malloc(bytes.size()));
  if (out == nullptr) return TPM_SIZE;
  std::memcpy(out, bytes.data(), bytes.size());
  *data = out;
  *length = static_cast<uint32_t>(bytes.size());
  return TPM_SUCCESS;
}

TPM_RESULT NvStore(const unsigned char* data, uint32_t length, uint32_t tpm_number,
                   const char* name) {
  std::optional<BlobKind> kind = KindForName(name);
  if (tpm_number != 0 || !kind) {
    RecordError(Error(ErrorKind::kInternal, "libtpms stored unknown state"));
    return TPM_FAIL;
  }
  std::span<const uint8_t> bytes(data, length);
  if (g_store == nullptr) {
    if (*kind == BlobKind::kPermanent) g_memory_permanent.assign(bytes.begin(), bytes.end());
    return TPM_SUCCESS;
  }
  auto written = g_store->Write(*kind, bytes);
  if (!written) {
    RecordError(
        written.error().Wrap("storing the TPM's " + std::string(BlobKindName(*kind)) + " state"));
    return TPM_FAIL;
  }
  return TPM_SUCCESS;
}

TPM_RESULT NvDelete(uint32_t tpm_number, const char* name, TPM_BOOL /*must_exist*/) {
  std::optional<BlobKind> kind = KindForName(name);
  if (tpm_number != 0 || !kind) return TPM_FAIL;
  if (g_store == nullptr) {
    if (*kind == BlobKind::kPermanent) g_memory_permanent.clear();
    return TPM_SUCCESS;
  }
  auto removed = g_store->Remove(*kind);
  if (!removed) {
    RecordError(removed.error().Wrap("deleting the TPM's state"));
    return TPM_FAIL;
  }
  return TPM_SUCCESS;
}

TPM_RESULT IoInit() { return TPM_SUCCESS; }

TPM_RESULT IoGetLocality(TPM_MODIFIER_INDICATOR* locality, uint32_t /*tpm_number*/) {
  *locality = g_locality;
  return TPM_SUCCESS;
}

// No physical presence: nothing in a VM can assert it (TPM 2.0 Part 1 §28, PP commands).
TPM_RESULT IoGetPhysicalPresence(TPM_BOOL* present, uint32_t /*tpm_number*/) {
  *present = FALSE;
  return TPM_SUCCESS;
}

}  // namespace

std::vector<uint8_t> TpmErrorResponse(uint32_t rc) {
  std::vector<uint8_t> out;
  AppendBe<uint16_t>(out, kTpmStNoSessions);
  AppendBe<uint32_t>(out, static_cast<uint32_t>(kTpmHeaderSize));
  AppendBe<uint32_t>(out, rc);
  return out;
}

std::optional<uint32_t> TpmResponseCode(std::span<const uint8_t> response) {
  if (response.size() < kTpmHeaderSize) return std::nullopt;
  return LoadBe<uint32_t>(response, 6);
}

Result<std::unique_ptr<TpmEngine>> TpmEngine::Create(SealedStateStore* store) {
  if (g_engine_alive.exchange(true)) {
    return Error(ErrorKind::kInternal,
                 "a TPM engine already exists in this process (libtpms is global)");
  }
  std::unique_ptr<TpmEngine> engine(new TpmEngine());  // its destructor clears the flag
  g_store = store;
  g_memory_permanent.clear();
  g_locality = 0;
  if (TPM_RESULT rc = TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2); rc != TPM_SUCCESS) {
    return Error(ErrorKind::kUnsupported, "libtpms: cannot select TPM 2.0: " + Hex(rc));
  }
  static libtpms_callbacks callbacks = {
      .sizeOfStruct = sizeof(libtpms_callbacks),
      .tpm_nvram_init = NvInit,
      .tpm_nvram_loaddata = NvLoad,
      .tpm_nvram_storedata = NvStore,
      .tpm_nvram_deletename = NvDelete,
      .tpm_io_init = IoInit,
      .tpm_io_getlocality = IoGetLocality,
      .tpm_io_getphysicalpresence = IoGetPhysicalPresence,
  };
  if (TPM_RESULT rc = TPMLIB_RegisterCallbacks(&callbacks); rc != TPM_SUCCESS) {
    return Error(ErrorKind::kInternal, "libtpms: registering callbacks failed: " + Hex(rc));
  }
  // libtpms's buffer size is global and outlives an engine; start from its current value,
  // never above our own ceiling.
  engine->buffer_size_ = TPMLIB_SetBufferSize(0, nullptr, nullptr);
  if (engine->buffer_size_ > kMaxTpmCommandSize || engine->buffer_size_ < kTpmHeaderSize) {
    engine->buffer_size_ = TPMLIB_SetBufferSize(kMaxTpmCommandSize, nullptr, nullptr);
  }
  RETURN_IF_ERROR(engine->Init());
  return engine;
}

Result<void> TpmEngine::Init() {
  g_nv_error.reset();
  TPM_RESULT rc = TPMLIB_MainInit();
  // A callback failure is reported even if libtpms carried on regardless: a state that
  // failed its check must never turn into a freshly manufactured TPM.
  if (g_nv_error) {
    Error e = g_nv_error->Wrap("starting the TPM");
    g_nv_error.reset();
    if (rc == TPM_SUCCESS) TPMLIB_Terminate();
    return e;
  }
  if (rc != TPM_SUCCESS) {
    return Error(ErrorKind::kInternal, "libtpms: TPMLIB_MainInit failed: " + Hex(rc));
  }
  initialized_ = true;
  return Ok();
}

TpmEngine::~TpmEngine() {
  if (initialized_) TPMLIB_Terminate();
  std::free(response_buffer_);
  if (!g_memory_permanent.empty())
    OPENSSL_cleanse(g_memory_permanent.data(), g_memory_permanent.size());
  g_memory_permanent.clear();
  g_store = nullptr;
  g_nv_error.reset();
  g_engine_alive.store(false);
}

Result<void> TpmEngine::Startup(bool clear) {
  // TPM 2.0 Part 3 §9.3.2: TPMI_ST_COMMAND_TAG, commandSize, TPM_CC_Startup, TPM_SU.
  const uint8_t su = clear ? 0x00 : 0x01;  // TPM_SU_CLEAR / TPM_SU_STATE (Part 2 §6.8)
  const uint8_t command[12] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0x00, su};
  ASSIGN_OR_RETURN(std::vector<uint8_t> response, Execute(command));
  uint32_t rc = TpmResponseCode(response).value_or(0xffffffff);
  if (rc == kTpmRcSuccess) return Ok();
  if (rc == kTpmRcInitialize) {
    return Error(ErrorKind::kInternal,
                 "TPM2_Startup: the TPM was already started (TPM_RC_INITIALIZE)");
  }
  return Error(ErrorKind::kProtocol, "TPM2_Startup failed: TPM_RC " + Hex(rc));
}

Result<std::vector<uint8_t>> TpmEngine::Execute(std::span<const uint8_t> command) {
  if (!initialized_) {
    return Error(ErrorKind::kInternal, "the TPM is not running (powered off, or a reset failed)");
  }
  // TPM 2.0 Part 1 §18.2: commandSize is the whole command, header included.
  if (command.size() < kTpmHeaderSize || command.size() > buffer_size_ ||
      LoadBe<uint32_t>(command, 2) != command.size()) {
    return TpmErrorResponse(kTpmRcCommandSize);
  }
  // TPMLIB_Process takes a mutable buffer; never hand it the caller's (possibly shared) bytes.
  std::vector<uint8_t> copy(command.begin(), command.end());
  uint32_t response_size = 0;
  TPM_RESULT rc = TPMLIB_Process(&response_buffer_, &response_size, &response_buffer_size_,
                                 copy.data(), static_cast<uint32_t>(copy.size()));
  if (rc != TPM_SUCCESS)
    return Error(ErrorKind::kInternal, "libtpms: TPMLIB_Process failed: " + Hex(rc));
  if (response_buffer_ == nullptr || response_size < kTpmHeaderSize ||
      response_size > response_buffer_size_ || response_size > kMaxTpmCommandSize ||
      LoadBe<uint32_t>({response_buffer_, response_size}, 2) != response_size) {
    return Error(ErrorKind::kInternal, "libtpms returned a malformed response");
  }
  return std::vector<uint8_t>(response_buffer_, response_buffer_ + response_size);
}

Result<void> TpmEngine::Reset() {
  if (initialized_) TPMLIB_Terminate();
  initialized_ = false;
  return Init();
}

void TpmEngine::Cancel() { TPMLIB_CancelCommand(); }

Result<void> TpmEngine::SetLocality(uint8_t locality) {
  if (locality > 4)
    return InvalidArgument("TPM locality must be 0..4, not " + std::to_string(locality));
  g_locality = locality;
  return Ok();
}

uint8_t TpmEngine::locality() const { return g_locality; }

bool TpmEngine::has_store() const { return g_store != nullptr; }

Result<void> TpmEngine::PowerOn() {
  if (initialized_) return Error(ErrorKind::kInternal, "the TPM is already running");
  return Init();
}

void TpmEngine::PowerOff() {
  if (initialized_) TPMLIB_Terminate();
  initialized_ = false;
}

namespace {

TPMLIB_StateType StateType(BlobKind kind) {
  return kind == BlobKind::kPermanent ? TPMLIB_STATE_PERMANENT : TPMLIB_STATE_VOLATILE;
}

// Takes a malloc'ed libtpms buffer: copies it into SecretBytes, cleanses and frees it.
SecretBytes TakeBuffer(unsigned char* data, uint32_t length) {
  SecretBytes out(std::span<const uint8_t>(data, length));
  OPENSSL_cleanse(data, length);
  std::free(data);
  return out;
}

Error LibtpmsError(const std::string& what, TPM_RESULT rc) {
  return Error(ErrorKind::kInternal, "libtpms: " + what + " failed: " + Hex(rc));
}

// Ok, or the error naming the libtpms call `what` that answered `rc`.
Result<void> LibtpmsOk(const char* what, TPM_RESULT rc) {
  if (rc != TPM_SUCCESS) return LibtpmsError(what, rc);
  return Ok();
}

// The calls that need a powered-on TPM (TPMLIB_MainInit done) refuse without one.
Result<void> MustRun(bool running) {
  if (!running) return Error(ErrorKind::kInternal, "the TPM is not running");
  return Ok();
}

}  // namespace

Result<SecretBytes> TpmEngine::GetState(BlobKind kind) {
  unsigned char* data = nullptr;
  uint32_t length = 0;
  g_nv_error.reset();
  TPM_RESULT rc = TPMLIB_GetState(StateType(kind), &data, &length);
  if (g_nv_error) {
    Error e = g_nv_error->Wrap("reading the TPM's state");
    g_nv_error.reset();
    if (data != nullptr) TakeBuffer(data, length);
    return e;
  }
  if (rc != TPM_SUCCESS) {
    if (data != nullptr) TakeBuffer(data, length);
    return LibtpmsError("TPMLIB_GetState(" + std::string(BlobKindName(kind)) + ")", rc);
  }
  if (data == nullptr || length == 0) {
    if (data != nullptr) std::free(data);
    return Error(ErrorKind::kNotFound,
                 "the TPM has no " + std::string(BlobKindName(kind)) + " state");
  }
  return TakeBuffer(data, length);
}

Result<void> TpmEngine::SetState(BlobKind kind, std::span<const uint8_t> plaintext) {
  if (initialized_)
    return Error(ErrorKind::kInternal, "the TPM's state can only be set while it is off");
  if (plaintext.empty() || plaintext.size() > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgument("an empty or oversized TPM state blob");
  }
  g_nv_error.reset();
  TPM_RESULT rc =
      TPMLIB_SetState(StateType(kind), plaintext.data(), static_cast<uint32_t>(plaintext.size()));
  if (g_nv_error) {
    Error e = g_nv_error->Wrap("setting the TPM's " + std::string(BlobKindName(kind)) + " state");
    g_nv_error.reset();
    return e;
  }
  if (rc != TPM_SUCCESS) {
    return Error(ErrorKind::kProtocol, "libtpms refused the " + std::string(BlobKindName(kind)) +
                                           " state blob: " + Hex(rc));
  }
  return Ok();
}

Result<void> TpmEngine::StoreVolatile() {
  RETURN_IF_ERROR(MustRun(initialized_));
  unsigned char* data = nullptr;
  uint32_t length = 0;
  TPM_RESULT rc = TPMLIB_VolatileAll_Store(&data, &length);
  if (rc != TPM_SUCCESS || data == nullptr) {
    if (data != nullptr) TakeBuffer(data, length);
    return LibtpmsError("TPMLIB_VolatileAll_Store", rc);
  }
  SecretBytes state = TakeBuffer(data, length);
  if (g_store == nullptr) return Ok();
  auto written = g_store->Write(BlobKind::kVolatile, state.span());
  if (!written) return written.error().Wrap("storing the TPM's volatile state");
  return Ok();
}

Result<void> TpmEngine::DeleteVolatile() {
  if (g_store == nullptr) return Ok();
  return g_store->Remove(BlobKind::kVolatile);
}

Result<bool> TpmEngine::TpmEstablished() {
  RETURN_IF_ERROR(MustRun(initialized_));
  TPM_BOOL bit = FALSE;
  if (TPM_RESULT rc = TPM_IO_TpmEstablished_Get(&bit); rc != TPM_SUCCESS) {
    return LibtpmsError("TPM_IO_TpmEstablished_Get", rc);
  }
  return bit != FALSE;
}

Result<void> TpmEngine::ResetTpmEstablished(uint8_t locality) {
  RETURN_IF_ERROR(MustRun(initialized_));
  if (locality > 4)
    return InvalidArgument("TPM locality must be 0..4, not " + std::to_string(locality));
  // libtpms asks the locality callback; only 3 and 4 may reset the bit.
  const uint8_t saved = g_locality;
  g_locality = locality;
  TPM_RESULT rc = TPM_IO_TpmEstablished_Reset();
  g_locality = saved;
  return LibtpmsOk("TPM_IO_TpmEstablished_Reset", rc);
}

Result<void> TpmEngine::HashStart() {
  RETURN_IF_ERROR(MustRun(initialized_));
  return LibtpmsOk("TPM_IO_Hash_Start", TPM_IO_Hash_Start());
}

Result<void> TpmEngine::HashData(std::span<const uint8_t> data) {
  RETURN_IF_ERROR(MustRun(initialized_));
  if (data.size() > std::numeric_limits<uint32_t>::max())
    return InvalidArgument("hash data too large");
  return LibtpmsOk("TPM_IO_Hash_Data",
                   TPM_IO_Hash_Data(data.data(), static_cast<uint32_t>(data.size())));
}

Result<void> TpmEngine::HashEnd() {
  RETURN_IF_ERROR(MustRun(initialized_));
  return LibtpmsOk("TPM_IO_Hash_End", TPM_IO_Hash_End());
}

Result<TpmEngine::BufferSizes> TpmEngine::SetBufferSize(uint32_t wanted) {
  if (wanted != 0 && initialized_) {
    return Error(ErrorKind::kInternal, "the buffer size can only be changed while the TPM is off");
  }
  BufferSizes s;
  s.size = TPMLIB_SetBufferSize(wanted, &s.min, &s.max);
  // Our own ceiling (the CRB buffer, Execute's limit) applies on top of libtpms's.
  if (s.max > kMaxTpmCommandSize) s.max = kMaxTpmCommandSize;
  if (s.size > kMaxTpmCommandSize)
    s.size = TPMLIB_SetBufferSize(kMaxTpmCommandSize, nullptr, nullptr);
  buffer_size_ = s.size;
  return s;
}

Result<std::string> TpmEngine::Info(uint64_t flags) {
  char* info = TPMLIB_GetInfo(static_cast<TPMLIB_InfoFlags>(flags));
  if (info == nullptr) return Error(ErrorKind::kInternal, "libtpms: TPMLIB_GetInfo failed");
  std::string out(info);
  std::free(info);
  return out;
}

}  // namespace vmm::vtpm
