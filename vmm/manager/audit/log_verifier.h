// Checks an audit log (log_format.h) and locates what is wrong with it: pure over lines, so the
// same code runs in `vmm audit verify`, the tests and the fuzzer (ARCHITECTURE.md §10).
//
//   LogVerifier v({.key = &key});
//   for each line: v.AddLine(bytes, /*terminated=*/true, bytes.size());
//   VerifyReport report = v.Finish();   // report.status(), report.findings
//
// What each kind of finding means:
//   tampered    the chain is broken: a record was altered, removed, reordered or inserted, a
//               line is not a record and no torn-tail record explains it, a checkpoint's
//               signature does not verify (or, with a key, a checkpoint is unsigned), a session's
//               records do not fit its open and final records, or the anchor does not match.
//   torn        lines that are not records where a write was cut short (a crash, power loss, a
//               full disk): at the end of the log, or explained by the torn-tail record after
//               them (their sizes and hashes match). Not tampering.
//   incomplete  a session without its final checkpoint: the writer crashed or still runs, or
//               records were removed from the end of the log. The chain cannot tell these apart:
//               an anchor (the hash of a later record, kept off the host) can.
//   note        information (e.g. signatures not checked).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "vmm/manager/audit/checkpoint_key.h"
#include "vmm/manager/audit/log_format.h"

namespace vmm::audit {

// The log must hold a record with this seq whose line hashes to this SHA-256 (hex): what
// `vmm audit verify` prints as "anchor", copied off the host.
struct Anchor {
  uint64_t seq = 0;
  std::string line_sha256;
};
// "SEQ:HEX" -> Anchor.
Result<Anchor> ParseAnchor(std::string_view text);

struct VerifyOptions {
  const CheckpointVerifier* key = nullptr;  // null: signatures are not checked
  std::optional<Anchor> anchor;
};

enum class FindingKind { kTampered, kTorn, kIncomplete, kNote };
const char* FindingKindName(FindingKind kind);

struct Finding {
  FindingKind kind = FindingKind::kNote;
  uint64_t line = 0;  // 1-based; 0 for the whole log
  uint64_t seq = 0;   // the record's seq; 0 when the line is not a record
  std::string message;
};

// Exit statuses of `vmm audit verify`, and the order of severity.
enum class VerifyStatus { kIntact = 0, kTampered = 1, kIncomplete = 3 };
const char* VerifyStatusName(VerifyStatus status);

struct VerifyReport {
  std::vector<Finding> findings;  // in line order within each kind; at most kMaxFindings
  uint64_t findings_dropped = 0;
  uint64_t lines = 0;
  uint64_t records = 0;
  uint64_t sessions = 0;
  uint64_t checkpoints = 0;
  uint64_t signatures_verified = 0;
  bool signatures_checked = false;
  uint64_t last_seq = 0;
  std::string head;  // SHA-256 of the last record's line: the next record's prev
  // The anchor to keep off the host: the last checkpoint's seq and line hash ("" without one).
  std::string last_checkpoint_anchor;

  VerifyStatus status() const;
};

inline constexpr size_t kMaxFindings = 1000;

class LogVerifier {
 public:
  explicit LogVerifier(VerifyOptions options) : options_(std::move(options)) {}
  // One line without its '\n'. `terminated`: a '\n' followed it (false only for the last).
  // `full_length` > bytes.size() when the caller kept only the first bytes of an overlong line.
  void AddLine(std::string_view bytes, bool terminated, uint64_t full_length);
  VerifyReport Finish();

 private:
  struct Pending {
    uint64_t line;
    uint64_t bytes;
    std::string sha256;
    std::string why;
  };
  struct Session {
    uint64_t open_line = 0;
    int32_t writer_pid = 0;
    std::string key_fpr;
    bool closed = false;
    uint64_t last_line = 0;
    uint64_t last_seq = 0;
  };
  void Add(FindingKind kind, uint64_t line, uint64_t seq, std::string message);
  void FlushPendingAsTampered();
  void CheckRecord(const Record& r, std::string_view bytes);

  VerifyOptions options_;
  VerifyReport report_;
  uint64_t line_ = 0;
  uint64_t expected_seq_ = 1;
  uint64_t prev_line_ = 0;  // line of the last record, 0 before the first
  std::string prev_hash_;
  std::vector<Pending> pending_;
  std::unordered_map<std::string, Session> sessions_;
  uint64_t last_verified_line_ = 0;
  uint64_t last_verified_seq_ = 0;
  bool anchor_seen_ = false;
};

// The whole log in memory, split at '\n' (the tests and the fuzzer).
VerifyReport VerifyLogText(std::string_view text, const VerifyOptions& options);

// Reads the log from `fd` in bounded chunks (lines over kMaxLineBytes are reported, not kept);
// refuses a file larger than kMaxLogFileBytes.
inline constexpr uint64_t kMaxLogFileBytes = 4ull << 30;
Result<VerifyReport> VerifyLogFd(int fd, const VerifyOptions& options);

}  // namespace vmm::audit
