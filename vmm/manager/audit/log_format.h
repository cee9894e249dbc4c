// The audit log's wire format, pure: one JSON object a line, hash-chained (ARCHITECTURE.md §10).
//
//   Record r = ...;  std::string line = SerializeRecord(r);      // no trailing '\n'
//   Result<Record> back = ParseRecord(line);                       // strict: untrusted bytes
//   std::string next_prev = LineHash(line);                        // the next record's "prev"
//
// Every record has "v" (1), "seq" (1, 2, ... across the whole file), "time" (RFC 3339 UTC,
// milliseconds), "session" (the writer's random id, one per AuditTrail::Open), "type" and
// "prev": the SHA-256 of the previous record's line as written (without its '\n'); the first
// record of a file chains from kGenesisPrev. The types:
//   open        a writer opened the log: "writer" {pid, uid}, "key_fpr" (its checkpoint key's
//               fingerprint, "" without a key)
//   event       an Event: "action", "who" {uid, gid, pid, context}, "vm" {uuid, name},
//               "details" [[key, value], ...], "result" ("success" | "failure")
//   checkpoint  the chain head (= its "prev") signed: "final" (written by Close), "alg"
//               ("ES256" | "none"), "key_fpr", "sig" (r || s, hex; "" with "none")
//   torn-tail   the writer found lines at the end that are not records (a write cut short by a
//               crash): "fragments" [{bytes, sha256}, ...], each the exact bytes of one line
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/sha256.h"
#include "vmm/manager/audit/audit_event.h"

namespace vmm::audit {

// A verifier refuses longer lines; the writer keeps an event's line under kMaxEventLineBytes, so
// that one write (a torn-tail record, the event, a checkpoint) stays well under the cap.
inline constexpr size_t kMaxLineBytes = 64 * 1024;
inline constexpr size_t kMaxEventLineBytes = 16 * 1024;
inline constexpr size_t kMaxFragments = 8;
inline constexpr int kFormatVersion = 1;

// SHA-256 of "vmm-audit-log/1 genesis", hex: the "prev" of a file's first record.
const std::string& GenesisPrev();

enum class RecordType { kOpen, kEvent, kCheckpoint, kTornTail };
const char* RecordTypeName(RecordType type);

struct Fragment {
  uint64_t bytes = 0;
  std::string sha256;  // hex
};

struct Record {
  RecordType type = RecordType::kEvent;
  uint64_t seq = 0;
  std::string time;
  std::string session;     // 32 hex digits
  std::string prev;        // 64 hex digits
  Event event;             // kEvent
  int32_t writer_pid = 0;  // kOpen
  uint32_t writer_uid = 0;
  std::string key_fpr;              // kOpen, kCheckpoint: 64 hex digits or ""
  bool final = false;               // kCheckpoint
  std::string alg;                  // kCheckpoint: "ES256" or "none"
  std::string sig;                  // kCheckpoint: 128 hex digits, or "" with "none"
  std::vector<Fragment> fragments;  // kTornTail
};

// One line, ASCII only (JSON escapes), keys in a fixed order. Invalid UTF-8 in a string becomes
// U+FFFD rather than failing: the record is written either way.
std::string SerializeRecord(const Record& record);
// Strict: size, JSON, no repeated keys, exactly the keys of the record's type, their types and
// ranges. The error says which rule failed.
Result<Record> ParseRecord(std::string_view line);

inline std::string LineHash(std::string_view line) { return Sha256Hex(line); }

// The bytes a checkpoint's signature covers: every field of the checkpoint but "sig".
std::string CheckpointMessage(const Record& checkpoint);

// "2025-01-02T03:04:05.678Z" for a CLOCK_REALTIME time.
std::string Rfc3339Utc(int64_t seconds, int64_t nanoseconds);
std::string NowRfc3339Utc();

}  // namespace vmm::audit
