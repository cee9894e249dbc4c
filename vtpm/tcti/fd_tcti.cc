#include "vtpm/tcti/fd_tcti.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <type_traits>

#include "base/bytes.h"
#include "base/event_loop.h"
#include "vtpm/engine/tpm_engine.h"

namespace vmm::vtpm {

namespace {

constexpr uint64_t kMagic = 0x766d6d2d74637469;  // "vmm-tcti"
constexpr uint16_t kTpmStRspCommand = 0x00c4;    // Part 1 §18.2: reply to a bad tag

using Clock = std::chrono::steady_clock;

}  // namespace

// Standard layout, the common structure first: the TSS casts our context to it.
struct FdTctiState {
  TSS2_TCTI_CONTEXT_COMMON_V2 common;
  UniqueFd fd;
  TctiOptions options;
  enum class Phase { kTransmit, kReceive, kBroken } phase = Phase::kTransmit;
  size_t have = 0;      // bytes of the current response read so far
  size_t expected = 0;  // its size from the header, once have >= 10
  std::array<uint8_t, kMaxTpmCommandSize> response{};
};

namespace {

static_assert(std::is_standard_layout_v<FdTctiState>);

FdTctiState* Cast(TSS2_TCTI_CONTEXT* ctx) {
  auto* s = reinterpret_cast<FdTctiState*>(ctx);
  if (s == nullptr || s->common.v1.magic != kMagic) return nullptr;
  return s;
}

TSS2_RC Break(FdTctiState* s) {
  s->phase = FdTctiState::Phase::kBroken;
  return TSS2_TCTI_RC_IO_ERROR;
}

// Waits for `events` until `deadline`: 1 ready, 0 timed out, -1 error.
int WaitFor(int fd, uint32_t events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    int ms = left.count() < 0 ? 0 : int(std::min<int64_t>(left.count(), 1 << 30));
    auto r = EventLoop::WaitFd(fd, events, ms);
    if (!r) return -1;
    if (*r == 0) {
      if (ms == 0 || Clock::now() >= deadline) return 0;
      continue;  // a signal (EINTR) ended the wait early
    }
    return 1;  // readable, writable, or HUP/ERR: the read or write reports which
  }
}

// Reads until `want` bytes of the response are buffered. A finite timeout that expires
// is TRY_AGAIN (the bytes read so far are kept); a bounded block that expires breaks.
TSS2_RC ReadUntil(FdTctiState* s, size_t want, Clock::time_point deadline, bool blocking) {
  while (s->have < want) {
    int ready = WaitFor(s->fd.get(), EPOLLIN, deadline);
    if (ready < 0) return Break(s);
    if (ready == 0) return blocking ? Break(s) : TSS2_TCTI_RC_TRY_AGAIN;
    ssize_t n = read(s->fd.get(), s->response.data() + s->have, want - s->have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return Break(s);  // error, or the peer closed mid-response
    s->have += size_t(n);
  }
  return TSS2_RC_SUCCESS;
}

TSS2_RC WriteAll(FdTctiState* s, const uint8_t* data, size_t size) {
  Clock::time_point deadline = Clock::now() + s->options.max_block;
  size_t done = 0;
  while (done < size) {
    int ready = WaitFor(s->fd.get(), EPOLLOUT, deadline);
    if (ready <= 0) return Break(s);
    // MSG_NOSIGNAL: a closed peer is an error to report, not a SIGPIPE.
    ssize_t n = send(s->fd.get(), data + done, size - done, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = write(s->fd.get(), data + done, size - done);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return Break(s);
    done += size_t(n);
  }
  return TSS2_RC_SUCCESS;
}

TSS2_RC Transmit(TSS2_TCTI_CONTEXT* ctx, size_t size, const uint8_t* command) {
  FdTctiState* s = Cast(ctx);
  if (s == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  if (command == nullptr) return TSS2_TCTI_RC_BAD_REFERENCE;
  if (s->phase == FdTctiState::Phase::kBroken) return TSS2_TCTI_RC_IO_ERROR;
  if (s->phase != FdTctiState::Phase::kTransmit) return TSS2_TCTI_RC_BAD_SEQUENCE;
  if (size < kTpmHeaderSize || size > kMaxTpmCommandSize ||
      LoadBe<uint32_t>({command, size}, 2) != size) {
    return TSS2_TCTI_RC_BAD_VALUE;
  }
  TSS2_RC rc = WriteAll(s, command, size);
  if (rc != TSS2_RC_SUCCESS) return rc;
  s->phase = FdTctiState::Phase::kReceive;
  s->have = 0;
  s->expected = 0;
  return TSS2_RC_SUCCESS;
}

TSS2_RC Receive(TSS2_TCTI_CONTEXT* ctx, size_t* size, uint8_t* response, int32_t timeout) {
  FdTctiState* s = Cast(ctx);
  if (s == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  if (size == nullptr) return TSS2_TCTI_RC_BAD_REFERENCE;
  if (s->phase == FdTctiState::Phase::kBroken) return TSS2_TCTI_RC_IO_ERROR;
  if (s->phase != FdTctiState::Phase::kReceive) return TSS2_TCTI_RC_BAD_SEQUENCE;
  if (timeout < TSS2_TCTI_TIMEOUT_BLOCK) return TSS2_TCTI_RC_BAD_VALUE;

  bool blocking = timeout == TSS2_TCTI_TIMEOUT_BLOCK;
  Clock::time_point deadline =
      Clock::now() + (blocking ? s->options.max_block : std::chrono::milliseconds(timeout));
  TSS2_RC rc = ReadUntil(s, kTpmHeaderSize, deadline, blocking);
  if (rc != TSS2_RC_SUCCESS) return rc;
  if (s->expected == 0) {
    const uint16_t tag = LoadBe<uint16_t>(s->response, 0).value_or(0);
    uint32_t rsp_size = LoadBe<uint32_t>(s->response, 2).value_or(0);
    bool tag_ok = tag == kTpmStNoSessions || tag == kTpmStSessions || tag == kTpmStRspCommand;
    if (!tag_ok || rsp_size < kTpmHeaderSize || rsp_size > kMaxTpmCommandSize) {
      s->phase = FdTctiState::Phase::kBroken;
      return TSS2_TCTI_RC_MALFORMED_RESPONSE;
    }
    s->expected = rsp_size;
  }
  if (response == nullptr) {  // the size query (TCTI spec: receive with NULL response)
    *size = s->expected;
    return TSS2_RC_SUCCESS;
  }
  if (*size < s->expected) {
    *size = s->expected;
    return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
  }
  rc = ReadUntil(s, s->expected, deadline, blocking);
  if (rc != TSS2_RC_SUCCESS) return rc;
  std::memcpy(response, s->response.data(), s->expected);
  *size = s->expected;
  s->phase = FdTctiState::Phase::kTransmit;
  s->have = 0;
  s->expected = 0;
  return TSS2_RC_SUCCESS;
}

void Finalize(TSS2_TCTI_CONTEXT* ctx) {
  FdTctiState* s = Cast(ctx);
  if (s == nullptr) return;
  s->fd.reset();
  s->phase = FdTctiState::Phase::kBroken;
}

TSS2_RC NotImplemented(TSS2_TCTI_CONTEXT* ctx) {
  return Cast(ctx) == nullptr ? TSS2_TCTI_RC_BAD_CONTEXT : TSS2_TCTI_RC_NOT_IMPLEMENTED;
}
TSS2_RC SetLocality(TSS2_TCTI_CONTEXT* ctx, uint8_t) { return NotImplemented(ctx); }
TSS2_RC MakeSticky(TSS2_TCTI_CONTEXT* ctx, TPM2_HANDLE*, uint8_t) { return NotImplemented(ctx); }

TSS2_RC GetPollHandles(TSS2_TCTI_CONTEXT* ctx, TSS2_TCTI_POLL_HANDLE* handles,
                       size_t* num_handles) {
  FdTctiState* s = Cast(ctx);
  if (s == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  if (num_handles == nullptr) return TSS2_TCTI_RC_BAD_REFERENCE;
  if (handles != nullptr) {
    if (*num_handles < 1) return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
    handles[0] = pollfd{s->fd.get(), POLLIN, 0};
  }
  *num_handles = 1;
  return TSS2_RC_SUCCESS;
}

}  // namespace

TctiContext::TctiContext(std::unique_ptr<FdTctiState> state) : state_(std::move(state)) {}
TctiContext::TctiContext(TctiContext&&) noexcept = default;
TctiContext& TctiContext::operator=(TctiContext&& other) noexcept {
  if (this != &other) {
    if (state_) Finalize(get());
    state_ = std::move(other.state_);
  }
  return *this;
}
TctiContext::~TctiContext() {
  if (state_) Finalize(get());
}

TSS2_TCTI_CONTEXT* TctiContext::get() const {
  return reinterpret_cast<TSS2_TCTI_CONTEXT*>(state_.get());
}

Result<TctiContext> TctiOverFd(UniqueFd fd, const TctiOptions& options) {
  if (!fd.valid()) return InvalidArgument("TCTI: invalid data channel fd");
  auto s = std::make_unique<FdTctiState>();
  s->common.v1.magic = kMagic;
  s->common.v1.version = 2;
  s->common.v1.transmit = Transmit;
  s->common.v1.receive = Receive;
  s->common.v1.finalize = Finalize;
  s->common.v1.cancel = NotImplemented;
  s->common.v1.getPollHandles = GetPollHandles;
  s->common.v1.setLocality = SetLocality;
  s->common.makeSticky = MakeSticky;
  s->fd = std::move(fd);
  s->options = options;
  return TctiContext(std::move(s));
}

}  // namespace vmm::vtpm
