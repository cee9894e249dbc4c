#include "bench/common/watchdog.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace bench {

Watchdog::Watchdog(std::string who, int stall_s) : who_(std::move(who)), stall_s_(stall_s) {
  if (stall_s_ > 0) thread_ = std::thread([this] { Watch(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::Watch() {
  unsigned long seen = ticks_.load(std::memory_order_relaxed);
  auto last = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; })) {
    auto now = std::chrono::steady_clock::now();
    unsigned long t = ticks_.load(std::memory_order_relaxed);
    if (t != seen) {
      seen = t;
      last = now;
    } else if (now - last >= std::chrono::seconds(stall_s_)) {
      std::fprintf(stderr, "%s: no progress for %d s during %s: the peer stopped answering\n",
                   who_.c_str(), stall_s_, step_.load(std::memory_order_relaxed));
      std::fflush(stderr);
      std::fflush(stdout);
      _exit(1);
    }
  }
}

}  // namespace bench
