#include "vmm/manager/lifecycle.h"

#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/enum_names.h"
#include "base/hex.h"

namespace vmm {

std::string NewVmUuid() {
  uint8_t b[16] = {};
  size_t got = 0;
  while (got < sizeof(b)) {
    ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string hex = HexBytes(std::span<const uint8_t>(b, sizeof(b)));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

bool IsVmUuid(std::string_view t) {
  if (t.size() != 36) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = t[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

constexpr NamedValue<VmState> kVmStateNames[] = {
    {VmState::kRunning, "running"},
    {VmState::kPaused, "paused"},
    {VmState::kShuttingDown, "shutting-down"},
};

std::string_view VmStateName(VmState state) { return NameOf(kVmStateNames, state, "unknown"); }

namespace {

std::string StateJson(VmState state) {
  return nlohmann::json{{"state", VmStateName(state)}}.dump() + "\n";
}

Transition Refuse(VmState state, const std::string& why) {
  Transition t;
  t.next = state;
  t.response = ErrorResponse(409, why + " (the VM is " + std::string(VmStateName(state)) + ")");
  return t;
}

}  // namespace

Transition Decide(VmState state, const LifecycleRequest& request) {
  Transition t;
  if (state == VmState::kShuttingDown) {
    return Refuse(state, "the VM is already shutting down");
  }
  switch (request.action) {
    case ApiAction::kPause:
      if (state != VmState::kRunning) return Refuse(state, "only a running VM can be paused");
      t.signals = {SIGSTOP};
      t.next = VmState::kPaused;
      break;
    case ApiAction::kResume:
      if (state != VmState::kPaused) return Refuse(state, "only a paused VM can be resumed");
      t.signals = {SIGCONT};
      t.next = VmState::kRunning;
      break;
    case ApiAction::kShutdown:
      // A paused VM runs again to see the button.
      if (state == VmState::kPaused) t.signals.push_back(SIGCONT);
      t.signals.push_back(SIGPWR);
      t.next = VmState::kShuttingDown;
      t.deadline_sec = request.deadline_sec;
      t.response = {202, nlohmann::json{{"state", VmStateName(t.next)},
                                        {"deadline_sec", request.deadline_sec}}
                                 .dump() +
                             "\n"};
      return t;
    default:
      return Refuse(state, "not a lifecycle action");
  }
  t.response = {200, StateJson(t.next)};
  return t;
}

Result<Lifecycle> Lifecycle::Create() {
  UniqueFd event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event.valid())
    return Error(ErrorKind::kSystem, "eventfd (the API's lifecycle channel)", errno);
  return Lifecycle(std::move(event), std::make_shared<Shared>());
}

ApiResponse Lifecycle::Submit(const LifecycleRequest& request) {
  std::unique_lock lock(shared_->mu);
  if (shared_->pending) return ErrorResponse(503, "another lifecycle request is in progress");
  shared_->pending = request;
  shared_->answer.reset();
  const uint64_t ticket = ++shared_->ticket;
  const uint64_t one = 1;
  if (write(event_.get(), &one, sizeof(one)) != sizeof(one)) {
    shared_->pending.reset();
    return ErrorResponse(500, "cannot reach the manager's main loop");
  }
  const bool got = shared_->answered.wait_for(lock, std::chrono::seconds(kAnswerTimeoutSec), [&] {
    return shared_->answer.has_value() && shared_->ticket == ticket;
  });
  if (!got) {
    shared_->pending.reset();
    return ErrorResponse(503, "the manager did not answer (is the VM stopping?)");
  }
  ApiResponse answer = std::move(*shared_->answer);
  shared_->answer.reset();
  return answer;
}

std::optional<Transition> Lifecycle::Serve(const std::function<void(const Transition&)>& apply) {
  uint64_t drained;
  (void)!read(event_.get(), &drained, sizeof(drained));
  std::lock_guard lock(shared_->mu);
  if (!shared_->pending) return std::nullopt;
  const LifecycleRequest request = *shared_->pending;
  shared_->pending.reset();
  Transition t = Decide(shared_->state.load(), request);
  if (t.response.status < 300) {
    apply(t);
    shared_->state.store(t.next);
    LifecycleCounts& c = shared_->counts;
    ++(request.action == ApiAction::kPause    ? c.pause
       : request.action == ApiAction::kResume ? c.resume
                                              : c.shutdown);
  } else {
    ++shared_->counts.refused;
  }
  shared_->answer = t.response;
  shared_->answered.notify_all();
  return t;
}

LifecycleCounts Lifecycle::counts() const {
  std::lock_guard lock(shared_->mu);
  return shared_->counts;
}

}  // namespace vmm
