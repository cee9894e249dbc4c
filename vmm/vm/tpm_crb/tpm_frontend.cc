#include "vmm/vm/tpm_crb/tpm_frontend.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/bytes.h"
#include "base/event_loop.h"

namespace vmm {
namespace {

// How long a vCPU may wait for room in the socket before the channel counts as broken. One
// command of at most a page is outstanding at a time, so in practice the write never waits.
constexpr int kSendTimeoutMs = 1000;

}  // namespace

Result<std::unique_ptr<TpmFrontend>> TpmFrontend::Create(UniqueFd data, uint64_t buffer_gpa,
                                                         std::span<uint8_t> buffer) {
  if (!data.valid()) return InvalidArgument("vTPM front end: no data channel");
  int flags = fcntl(data.get(), F_GETFL);
  if (flags < 0 || fcntl(data.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoError("vTPM front end: fcntl(O_NONBLOCK)");
  }
  std::unique_ptr<TpmFrontend> f(new TpmFrontend(std::move(data)));
  ASSIGN_OR_RETURN(f->crb_, vtpm::CrbDevice::Create(buffer_gpa, buffer, *f));
  return f;
}

TpmFrontend::~TpmFrontend() = default;

void TpmFrontend::Read(uint64_t offset, std::span<uint8_t> data) { crb_->Read(offset, data); }

void TpmFrontend::Write(uint64_t offset, std::span<const uint8_t> data) {
  crb_->Write(offset, data);
}

bool TpmFrontend::broken() const {
  std::lock_guard<std::mutex> l(mu_);
  return broken_;
}

uint64_t TpmFrontend::commands_completed() const {
  std::lock_guard<std::mutex> l(mu_);
  return completed_;
}

void TpmFrontend::Break(std::unique_lock<std::mutex>& lock, std::string why) {
  if (!broken_) {
    broken_ = true;
    broken_why_ = std::move(why);
  }
  waiting_ = false;
  lock.unlock();
  crb_->SetFatal();  // answers a running command with TPM_RC_FAILURE; START ignored from now
}

void TpmFrontend::Submit(std::span<const uint8_t> command) {
  std::unique_lock<std::mutex> lock(mu_);
  if (broken_) {
    lock.unlock();
    crb_->SetFatal();
    return;
  }
  // Set before sending: the answer may be read by the main loop before send() returns.
  waiting_ = true;
  response_.clear();
  size_t sent = 0;
  while (sent < command.size()) {
    ssize_t n = send(data_.get(), command.data() + sent, command.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      auto ready = EventLoop::WaitFd(data_.get(), EPOLLOUT, kSendTimeoutMs);
      if (ready && *ready != 0) continue;
      Break(lock, "the vTPM did not take a command within 1 s");
      return;
    }
    Break(lock, std::string("sending a command to the vTPM failed: ") +
                    (n < 0 ? std::strerror(errno) : "short write"));
    return;
  }
}

void TpmFrontend::Cancel() {
  // The guest channel of the vTPM has no control channel: a cancel would be a control
  // message, and the vTPM runs one command at a time anyway. CTRL_CANCEL is a hint (PTP
  // §6.5.3.5); the command is answered normally.
}

Result<void> TpmFrontend::OnReadable() {
  std::unique_lock<std::mutex> lock(mu_);
  if (broken_) {
    if (broken_reported_) return Ok();
    broken_reported_ = true;
    return Error(ErrorKind::kProtocol, "vTPM channel: " + broken_why_);
  }
  const size_t limit = crb_->buffer_size();
  while (true) {
    // Read the header first, then exactly the rest it announces: never more than one
    // response, never more than the buffer holds.
    size_t want = vtpm::kTpmHeaderSize;
    if (response_.size() >= vtpm::kTpmHeaderSize) want = LoadBe<uint32_t>(response_, 2).value_or(0);
    if (want < vtpm::kTpmHeaderSize || want > limit) {
      Break(lock, "the vTPM sent a response of " + std::to_string(want) +
                      " bytes (the buffer holds " + std::to_string(limit) + ")");
      broken_reported_ = true;
      return Error(ErrorKind::kProtocol, "vTPM channel: " + broken_why_);
    }
    if (response_.size() == want) break;
    uint8_t chunk[4096];
    size_t room = std::min(sizeof(chunk), want - response_.size());
    ssize_t n = recv(data_.get(), chunk, room, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return Ok();  // the rest comes later
    if (n <= 0) {
      Break(lock, n == 0 ? "the vTPM closed the channel"
                         : std::string("reading from the vTPM failed: ") + std::strerror(errno));
      broken_reported_ = true;
      return Error(ErrorKind::kProtocol, "vTPM channel: " + broken_why_);
    }
    if (!waiting_) {
      Break(lock, "the vTPM sent bytes while no command was outstanding");
      broken_reported_ = true;
      return Error(ErrorKind::kProtocol, "vTPM channel: " + broken_why_);
    }
    response_.insert(response_.end(), chunk, chunk + n);
  }
  std::vector<uint8_t> response = std::move(response_);
  response_.clear();
  waiting_ = false;
  ++completed_;
  lock.unlock();
  crb_->Complete(response);  // the CRB checks it again and copies it into the buffer
  return Ok();
}

}  // namespace vmm
