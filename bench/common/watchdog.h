// Ends a bench driver when the peer it drives stops answering: if Progress() is not called
// for `stall_s` seconds, a thread prints "<who>: no progress for N s during <step>: the
// peer stopped answering" to stderr and _exit(1)s, so that the run script can report the
// peer as "cannot serve" instead of waiting on a blocking socket call for ever. The hot path
// is one relaxed atomic store.
//
//   bench::Watchdog dog("backend_bench: qemu-storage-daemon", 10);
//   dog.Progress("vhost-user handshake");
//   for (...) { DoRequest(); dog.Progress("READ requests"); }
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace bench {

class Watchdog {
 public:
  // stall_s <= 0: never fires.
  Watchdog(std::string who, int stall_s);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // `step` must outlive the watchdog (a string literal).
  void Progress(const char* step) {
    step_.store(step, std::memory_order_relaxed);
    ticks_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  void Watch();

  const std::string who_;
  const int stall_s_;
  std::atomic<const char*> step_{"start-up"};
  std::atomic<unsigned long> ticks_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace bench
