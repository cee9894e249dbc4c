// How a running VM is told to stop, and why it stopped. Shared by every vCPU thread and the
// main thread; the first stop request wins and later ones are ignored.
//
//   control.RequestStop(StopReason::kPowerOff, "guest powered off through ACPI");
//   control.WaitFd();                 // readable once a stop was requested (poll it)
//   if (control.reason() == StopReason::kError) print(control.message());
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

#include "base/unique_fd.h"

namespace vmm {

enum class StopReason { kNone, kPowerOff, kReset, kSignal, kError };

class VmControl {
 public:
  VmControl();
  void RequestStop(StopReason reason, std::string message);
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  StopReason reason() const;
  std::string message() const;
  int WaitFd() const { return event_.get(); }
  // Called once, on the first stop request, to kick vCPUs out of KVM_RUN.
  void SetKicker(std::function<void()> kick) { kick_ = std::move(kick); }

 private:
  mutable std::mutex mu_;
  std::atomic<bool> stopping_{false};
  StopReason reason_ = StopReason::kNone;
  std::string message_;
  UniqueFd event_;
  std::function<void()> kick_;
};

}  // namespace vmm
