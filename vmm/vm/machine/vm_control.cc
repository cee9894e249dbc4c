#include "vmm/vm/machine/vm_control.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace vmm {

VmControl::VmControl() : event_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void VmControl::RequestStop(StopReason reason, std::string message) {
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (reason_ != StopReason::kNone) return;
    reason_ = reason;
    message_ = std::move(message);
    stopping_.store(true, std::memory_order_release);
  }
  if (kick_) kick_();
  uint64_t one = 1;
  if (event_.valid()) (void)!write(event_.get(), &one, sizeof(one));
}

StopReason VmControl::reason() const {
  std::lock_guard<std::mutex> guard(mu_);
  return reason_;
}

std::string VmControl::message() const {
  std::lock_guard<std::mutex> guard(mu_);
  return message_;
}

}  // namespace vmm
