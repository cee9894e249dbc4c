// What one audit record says: who did what to which VM, with which result. Plain data that
// the manager fills in and AuditTrail (audit_trail.h) writes to the hash-chained log and, as
// libvirt-style records, to the Linux audit trail (ARCHITECTURE.md §10).
//
//   Event e{.action = "start", .who = {.uid = 0, .pid = getpid()}, .vm_uuid = uuid,
//           .vm_name = "web", .details = {{"kernel_sha256", hex}}, .success = true};
//   RETURN_IF_ERROR(ValidateEvent(e));
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace vmm::audit {

// Who asked: for the API, the peer's SO_PEERCRED and SELinux label; for the command line, the
// manager's own credentials.
struct Subject {
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t pid = 0;
  std::string context;  // SELinux label, or "" where SELinux is off
};

struct Event {
  // "start", "stop", "pause", "resume", "shutdown", "attest", "info", "policy-check", ...:
  // 1 to 64 of [a-z.-].
  std::string action;
  Subject who;
  std::string vm_uuid;  // RFC 4122 text (8-4-4-4-12 hex digits), or "" before a VM has one
  std::string vm_name;
  // In order; a key may repeat (one "disk" per disk). Keys 1 to 64 of [a-z0-9_]. Keys the Linux
  // audit records read (linux_audit.h): reason, vm_pid, disk, mem_kib, vcpus, rng, tpm, vm_ctx,
  // img_ctx.
  std::vector<std::pair<std::string, std::string>> details;
  bool success = true;
};

// Sizes an event may have; a larger one is refused rather than cut.
inline constexpr size_t kMaxNameBytes = 256;
inline constexpr size_t kMaxContextBytes = 1024;
inline constexpr size_t kMaxDetails = 64;
inline constexpr size_t kMaxDetailValueBytes = 4096;

// InvalidArgument naming the first field that breaks the rules above.
Result<void> ValidateEvent(const Event& event);
// True for RFC 4122 text: 36 characters, hex digits and dashes at 8-4-4-4-12.
bool IsUuidText(const std::string& text);

}  // namespace vmm::audit
