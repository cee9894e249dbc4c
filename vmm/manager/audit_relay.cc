#include "vmm/manager/audit_relay.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>

namespace vmm {

Result<std::unique_ptr<AuditRelay>> AuditRelay::Create(audit::AuditTrail* trail) {
  UniqueFd event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event.valid()) return Error(ErrorKind::kSystem, "eventfd (the audit relay)", errno);
  return std::unique_ptr<AuditRelay>(new AuditRelay(trail, std::move(event)));
}

Result<void> AuditRelay::Submit(const audit::Event& event) {
  if (!trail_) return Ok();
  auto pending = std::make_shared<Pending>();
  pending->event = event;
  std::unique_lock lock(mu_);
  if (closed_) return Error(ErrorKind::kInternal, "the manager is stopping: record not written");
  queue_.push_back(pending);
  const uint64_t one = 1;
  if (write(event_.get(), &one, sizeof(one)) != sizeof(one)) {
    return Error(ErrorKind::kSystem, "waking the manager's main loop for an audit record", errno);
  }
  if (!written_.wait_for(lock, std::chrono::seconds(kWaitSec), [&] { return pending->done; })) {
    return Error(ErrorKind::kInternal, "the manager's main loop did not write the record in time");
  }
  return pending->result;
}

void AuditRelay::Drain() {
  uint64_t count;
  (void)!read(event_.get(), &count, sizeof(count));
  std::deque<std::shared_ptr<Pending>> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(queue_);
  }
  for (auto& p : batch) {
    Result<void> r = trail_->Record(p->event);
    std::lock_guard lock(mu_);
    p->result = std::move(r);
    p->done = true;
  }
  written_.notify_all();
}

void AuditRelay::Close() {
  Drain();
  std::lock_guard lock(mu_);
  closed_ = true;
}

}  // namespace vmm
