// The manager's audit trail: every lifecycle and management action, allowed or refused, as one
// record in an append-only, hash-chained JSON-lines log (log_format.h) with signed checkpoints,
// and, where the kernel's audit is on, as libvirt-style Linux audit records (linux_audit.h).
// ARCHITECTURE.md §10 describes the format; SECURITY.md what it proves.
//
//   ASSIGN_OR_RETURN(auto trail, AuditTrail::Open({.path = "/var/log/vmm/audit.jsonl",
//                                                  .checkpoint_key = "/etc/vmm/audit.key"}));
//   RETURN_IF_ERROR(trail->Record({.action = "start", .who = who, .vm_uuid = uuid, ...}));
//   RETURN_IF_ERROR(trail->Close());   // the final checkpoint: the log ends here on purpose
//
// Ownership and threads: the AuditTrail owns the log's fd (O_CLOEXEC, never inherited). Record
// may be called from any thread; it holds the file's flock while it appends, so several `vmm`
// processes may share one log. Only the process that opened it may use it: a forked child's
// Record and Close fail and its destructor writes nothing.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/manager/audit/audit_event.h"
#include "vmm/manager/audit/checkpoint_key.h"
#include "vmm/manager/audit/linux_audit.h"

namespace vmm::audit {

class AuditTrail {
 public:
  struct Options {
    std::string path;
    std::string checkpoint_key;      // PEM EC P-256 private key file (mode 0600), optional
    uint32_t checkpoint_every = 64;  // a checkpoint after this many records; 0: only at Close
    bool linux_audit = true;         // also send Linux audit records (best effort)
  };

  // Opens or creates the log (O_APPEND, mode 0600, never through a symlink; an existing log
  // that group or others may write, or that another user owns, is refused). An existing log
  // continues its chain from its last record; lines after it that are not records (a write a
  // crash cut short) are kept and described by a torn-tail record, and torn_tail_report() says
  // so. Then an open record starts this session.
  static Result<std::unique_ptr<AuditTrail>> Open(const Options& options);
  ~AuditTrail();  // Close() if the caller did not, in the process that opened the log
  AuditTrail(const AuditTrail&) = delete;
  AuditTrail& operator=(const AuditTrail&) = delete;

  // Appends the event (and a checkpoint when one is due) with one write and fsyncs; then sends
  // the Linux audit records, whose failure is noted once on stderr and never returned. An
  // invalid event (ValidateEvent) or one whose line would pass kMaxEventLineBytes is refused.
  Result<void> Record(const Event& event);
  // Writes the final checkpoint (signed when a key is set) and closes the log. Idempotent.
  Result<void> Close();

  const std::string& session() const { return session_; }
  const std::string& path() const { return path_; }
  // "" unless Open found a torn tail, then what it was and where it is recorded.
  const std::string& torn_tail_report() const { return torn_tail_report_; }
  // "" while Linux audit records are sent (or were not asked for), else why not.
  std::string linux_audit_status() const;

 private:
  struct Tail;
  AuditTrail() = default;
  Result<Tail> ScanTail();
  // Appends `lines` (each ending in '\n') after the torn-tail record `tail` may need, under the
  // file lock held by the caller. `build` makes the lines from the chain's head.
  Result<void> AppendLocked(bool final_checkpoint, const Event* event, bool open_record);
  Result<std::string> CheckpointLine(uint64_t seq, const std::string& prev, bool final);

  std::mutex mutex_;
  UniqueFd fd_;
  std::string path_;
  std::string session_;
  std::optional<CheckpointSigner> signer_;
  uint32_t checkpoint_every_ = 64;
  uint32_t since_checkpoint_ = 0;
  off_t expected_end_ = -1;  // the file's size after our last write; -1: scan the tail again
  uint64_t last_seq_ = 0;
  std::string head_;  // hash of the last record's line
  pid_t owner_ = 0;
  bool closed_ = true;  // until Open has written the open record
  std::string torn_tail_report_;
  std::unique_ptr<LinuxAuditSink> linux_audit_;
  bool linux_audit_noted_ = false;
};

}  // namespace vmm::audit
