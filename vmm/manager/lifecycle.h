// A running VM's lifecycle as the management API drives it (ARCHITECTURE.md §8): pause,
// resume and shutdown requests travel from the API thread to the manager's main loop, which
// alone signals the VM process (the API thread's filter has no kill).
//
//   pause     SIGSTOP to the VM process: every vCPU thread stops where it is; the device and
//             vTPM processes stay up, idle. The guest's clocks go on (it sees the time jump).
//   resume    SIGCONT.
//   shutdown  SIGPWR: the VM process presses the ACPI power button (PM1 PWRBTN_STS and an
//             SCI); a guest that powers off ends `vmm run` with status 0. If it has not when
//             the deadline passes, the manager stops the VM process (SIGTERM: status 143).
//
//   ASSIGN_OR_RETURN(Lifecycle lc, Lifecycle::Create());
//   api handler:  return lc.Submit(request);          // waits for the main loop's answer
//   main loop:    poll lc.fd(); then lc.Serve([&](const Transition& t) { ...signals... });
#pragma once

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/sha256.h"  // Sha256Hex: the digests vm.info reports, as vmm measure does
#include "base/unique_fd.h"
#include "vmm/manager/api_server.h"

namespace vmm {

// A VM's identity on the API and in audit records: --name (default "vm") and --uuid (default
// a random RFC 4122 version 4 UUID, lower-case).
std::string NewVmUuid();
bool IsVmUuid(std::string_view text);

enum class VmState { kRunning, kPaused, kShuttingDown };
std::string_view VmStateName(VmState state);

// What a request does in a state: the signals to send the VM process, in order, the state
// after, and the API's answer. Pure: unit-tested for every state and request.
struct Transition {
  std::vector<int> signals;
  VmState next = VmState::kRunning;
  uint32_t deadline_sec = 0;  // shutdown: when to stop the VM process if still running
  ApiResponse response;
};
Transition Decide(VmState state, const LifecycleRequest& request);

struct LifecycleCounts {
  uint64_t pause = 0, resume = 0, shutdown = 0, refused = 0;
};

class Lifecycle {
 public:
  static Result<Lifecycle> Create();

  // The API thread: hands the request to the main loop and waits for its answer (503 if the
  // main loop does not answer within kAnswerTimeoutSec, e.g. while the VM is stopping).
  static constexpr int kAnswerTimeoutSec = 5;
  ApiResponse Submit(const LifecycleRequest& request);

  // The main loop: readable while a request waits.
  int fd() const { return event_.get(); }
  // The main loop: decides the waiting request (if any), lets `apply` send the signals, then
  // answers the API thread. Returns the transition, if there was a request.
  std::optional<Transition> Serve(const std::function<void(const Transition&)>& apply);

  VmState state() const { return shared_->state.load(); }
  LifecycleCounts counts() const;

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable answered;
    std::optional<LifecycleRequest> pending;
    std::optional<ApiResponse> answer;
    uint64_t ticket = 0;  // which Submit the answer is for
    std::atomic<VmState> state{VmState::kRunning};
    LifecycleCounts counts;
  };
  Lifecycle(UniqueFd event, std::shared_ptr<Shared> shared)
      : event_(std::move(event)), shared_(std::move(shared)) {}
  UniqueFd event_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace vmm
