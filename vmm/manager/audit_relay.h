// The manager's audit records, written by its main thread only (ARCHITECTURE.md §10). The API
// threads run confined (no capabilities, no files, no readlink): they hand each record to the
// main loop through this relay and wait until it is on disk before they answer the client, so
// no API action is ever answered without its record.
//
//   AuditRelay relay(trail.get());                    // trail: null when there is no log
//   api thread:  relay.Submit(event);                 // returns once written (or given up)
//   main loop:   poll relay.fd(); then relay.Drain();
//   at exit:     relay.Close();                       // later Submits return at once
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/manager/audit/audit_trail.h"

namespace vmm {

class AuditRelay {
 public:
  static constexpr int kWaitSec = 5;
  static Result<std::unique_ptr<AuditRelay>> Create(audit::AuditTrail* trail);

  // Any thread: queues `event` and waits (kWaitSec at most) until the main loop wrote it.
  // An error says why it was not written (the caller reports it; the action itself stands).
  Result<void> Submit(const audit::Event& event);
  // The main thread.
  int fd() const { return event_.get(); }
  void Drain();
  void Close();

 private:
  struct Pending {
    audit::Event event;
    bool done = false;
    Result<void> result = Ok();
  };
  AuditRelay(audit::AuditTrail* trail, UniqueFd event) : trail_(trail), event_(std::move(event)) {}
  audit::AuditTrail* trail_;
  UniqueFd event_;
  std::mutex mu_;
  std::condition_variable written_;
  std::deque<std::shared_ptr<Pending>> queue_;
  bool closed_ = false;
};

}  // namespace vmm
