#include "vmm/manager/audit/log_verifier.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "base/enum_names.h"

namespace vmm::audit {
namespace {

std::string At(uint64_t line, uint64_t seq) {
  std::string s = "line " + std::to_string(line);
  if (seq != 0) s += " (seq " + std::to_string(seq) + ")";
  return s;
}

std::string Short(const std::string& hex) { return hex.substr(0, 16); }

}  // namespace

Result<Anchor> ParseAnchor(std::string_view text) {
  const size_t colon = text.find(':');
  Anchor a;
  if (colon == std::string_view::npos) return InvalidArgument("--anchor: expected SEQ:SHA256");
  auto [end, ec] = std::from_chars(text.data(), text.data() + colon, a.seq);
  if (ec != std::errc() || end != text.data() + colon || a.seq == 0) {
    return InvalidArgument("--anchor: SEQ is not a positive whole number");
  }
  a.line_sha256 = std::string(text.substr(colon + 1));
  if (a.line_sha256.size() != 64 ||
      !std::all_of(a.line_sha256.begin(), a.line_sha256.end(),
                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
    return InvalidArgument("--anchor: SHA256 is not 64 lowercase hex digits");
  }
  return a;
}

constexpr NamedValue<FindingKind> kFindingKindNames[] = {
    {FindingKind::kTampered, "tampered"},
    {FindingKind::kTorn, "torn"},
    {FindingKind::kIncomplete, "incomplete"},
    {FindingKind::kNote, "note"},
};
constexpr NamedValue<VerifyStatus> kVerifyStatusNames[] = {
    {VerifyStatus::kIntact, "intact"},
    {VerifyStatus::kTampered, "tampered"},
    {VerifyStatus::kIncomplete, "incomplete"},
};

const char* FindingKindName(FindingKind kind) { return NameOf(kFindingKindNames, kind, "?"); }

const char* VerifyStatusName(VerifyStatus status) {
  return NameOf(kVerifyStatusNames, status, "?");
}

VerifyStatus VerifyReport::status() const {
  bool incomplete = false;
  for (const Finding& f : findings) {
    if (f.kind == FindingKind::kTampered) return VerifyStatus::kTampered;
    incomplete = incomplete || f.kind == FindingKind::kTorn || f.kind == FindingKind::kIncomplete;
  }
  return incomplete ? VerifyStatus::kIncomplete : VerifyStatus::kIntact;
}

void LogVerifier::Add(FindingKind kind, uint64_t line, uint64_t seq, std::string message) {
  if (report_.findings.size() >= kMaxFindings) {
    // Keep the verdict right even when the list is full: a tampering finding replaces a note.
    if (kind == FindingKind::kTampered && report_.status() != VerifyStatus::kTampered) {
      report_.findings.back() = Finding{kind, line, seq, std::move(message)};
    }
    ++report_.findings_dropped;
    return;
  }
  report_.findings.push_back(Finding{kind, line, seq, std::move(message)});
}

void LogVerifier::FlushPendingAsTampered() {
  for (const Pending& p : pending_) {
    Add(FindingKind::kTampered, p.line, 0,
        At(p.line, 0) + " is not a record (" + p.why +
            ") and no torn-tail record after it explains it: it was altered or inserted");
  }
  pending_.clear();
}

void LogVerifier::AddLine(std::string_view bytes, bool terminated, uint64_t full_length) {
  ++line_;
  ++report_.lines;
  if (full_length > kMaxLineBytes) {
    FlushPendingAsTampered();
    Add(FindingKind::kTampered, line_, 0,
        At(line_, 0) + " is " + std::to_string(full_length) +
            " bytes, over the 64 KiB no writer produces");
    return;
  }
  Pending fragment{line_, bytes.size(), "", ""};
  if (!terminated) {
    fragment.why = "no newline at the end of the file";
  } else {
    auto record = ParseRecord(bytes);
    if (record) {
      CheckRecord(*record, bytes);
      return;
    }
    fragment.why = record.error().message();
  }
  if (pending_.size() >= kMaxFragments) FlushPendingAsTampered();
  fragment.sha256 = Sha256Hex(bytes);
  pending_.push_back(std::move(fragment));
}

void LogVerifier::CheckRecord(const Record& r, std::string_view bytes) {
  const uint64_t line = line_;
  ++report_.records;

  // Lines that are not records must be exactly the torn-tail record's fragments.
  if (r.type == RecordType::kTornTail) {
    bool match = r.fragments.size() == pending_.size();
    for (size_t i = 0; match && i < pending_.size(); ++i) {
      match =
          r.fragments[i].bytes == pending_[i].bytes && r.fragments[i].sha256 == pending_[i].sha256;
    }
    if (match) {
      uint64_t total = 0;
      for (const Pending& p : pending_) total += p.bytes;
      Add(FindingKind::kTorn, pending_.front().line, 0,
          "lines " + std::to_string(pending_.front().line) + "-" +
              std::to_string(pending_.back().line) + " (" + std::to_string(total) +
              " bytes) are a write cut short by a crash, recorded by the torn-tail record at " +
              At(line, r.seq));
      pending_.clear();
    } else {
      FlushPendingAsTampered();
      Add(FindingKind::kTampered, line, r.seq,
          "the torn-tail record at " + At(line, r.seq) +
              " names lines that are not the ones before it: lines were removed, altered or "
              "inserted there");
    }
  } else {
    FlushPendingAsTampered();
  }

  // The chain: seq and prev against the previous record.
  std::string problem;
  if (r.seq > expected_seq_) {
    problem = "seq jumps from " + std::to_string(expected_seq_ - 1) + " to " +
              std::to_string(r.seq) + ": records " + std::to_string(expected_seq_) + ".." +
              std::to_string(r.seq - 1) + " are missing (removed)";
  } else if (r.seq < expected_seq_) {
    problem = "seq " + std::to_string(r.seq) + " follows seq " + std::to_string(expected_seq_ - 1) +
              ": this record was inserted, duplicated or moved";
  }
  const std::string& want_prev = prev_line_ == 0 ? GenesisPrev() : prev_hash_;
  if (r.prev != want_prev) {
    if (!problem.empty()) problem += "; ";
    if (prev_line_ == 0) {
      problem +=
          "the first record does not chain from the genesis value: records were removed "
          "from the start of the log";
    } else if (problem.empty()) {
      problem += "its prev is not the hash of " + At(prev_line_, expected_seq_ - 1) + ": " +
                 At(prev_line_, expected_seq_ - 1) + " was altered (or this record's prev was)";
    } else {
      problem += "its prev is not the hash of " + At(prev_line_, expected_seq_ - 1);
    }
  }
  if (!problem.empty()) Add(FindingKind::kTampered, line, r.seq, At(line, r.seq) + ": " + problem);

  // Sessions: an open record first, records while open, at most one final checkpoint.
  auto it = sessions_.find(r.session);
  if (r.type == RecordType::kOpen) {
    if (it != sessions_.end()) {
      Add(FindingKind::kTampered, line, r.seq,
          At(line, r.seq) + ": session " + Short(r.session) + " was already opened at line " +
              std::to_string(it->second.open_line) + ": the record was duplicated");
    } else {
      sessions_.emplace(r.session, Session{line, r.writer_pid, r.key_fpr, false, line, r.seq});
      ++report_.sessions;
    }
  } else if (r.type != RecordType::kTornTail) {
    if (it == sessions_.end()) {
      Add(FindingKind::kTampered, line, r.seq,
          At(line, r.seq) + ": session " + Short(r.session) +
              " has no open record before it: the record was inserted, or its open record "
              "removed");
    } else if (it->second.closed) {
      Add(FindingKind::kTampered, line, r.seq,
          At(line, r.seq) + ": session " + Short(r.session) +
              " ended with its final checkpoint before: the record was inserted or moved");
    } else {
      it->second.last_line = line;
      it->second.last_seq = r.seq;
      if (r.type == RecordType::kCheckpoint && r.final) it->second.closed = true;
      if (r.type == RecordType::kCheckpoint && r.key_fpr != it->second.key_fpr) {
        Add(FindingKind::kTampered, line, r.seq,
            At(line, r.seq) + ": the checkpoint's key is not the one its session opened with");
      }
    }
  }

  // Checkpoints: signatures, when a key was given.
  if (r.type == RecordType::kCheckpoint) {
    ++report_.checkpoints;
    report_.last_checkpoint_anchor = std::to_string(r.seq) + ":" + LineHash(bytes);
    if (options_.key != nullptr) {
      if (r.alg == "none") {
        Add(FindingKind::kTampered, line, r.seq,
            At(line, r.seq) + ": the checkpoint is not signed, but --key was given");
      } else if (r.key_fpr != options_.key->fingerprint()) {
        Add(FindingKind::kTampered, line, r.seq,
            At(line, r.seq) + ": the checkpoint is signed with another key (fingerprint " +
                Short(r.key_fpr) + "..., --key is " + Short(options_.key->fingerprint()) + "...)");
      } else if (!options_.key->Verify(CheckpointMessage(r), r.sig)) {
        Add(FindingKind::kTampered, line, r.seq,
            At(line, r.seq) + ": the checkpoint's signature does not verify");
      } else {
        ++report_.signatures_verified;
        last_verified_line_ = line;
        last_verified_seq_ = r.seq;
      }
    }
  }

  if (options_.anchor && r.seq == options_.anchor->seq && !anchor_seen_) {
    anchor_seen_ = true;
    if (LineHash(bytes) != options_.anchor->line_sha256) {
      Add(FindingKind::kTampered, line, r.seq,
          At(line, r.seq) + ": the record does not hash to the --anchor: it was altered");
    }
  }

  // Continue from this record either way, so that each break is reported where it is.
  expected_seq_ = r.seq + 1;
  prev_hash_ = LineHash(bytes);
  prev_line_ = line;
  report_.last_seq = r.seq;
  report_.head = prev_hash_;
}

VerifyReport LogVerifier::Finish() {
  if (!pending_.empty()) {
    uint64_t total = 0;
    for (const Pending& p : pending_) total += p.bytes;
    Add(FindingKind::kTorn, pending_.front().line, 0,
        "the log ends in a torn write: " + std::to_string(pending_.size()) + " line(s) from " +
            At(pending_.front().line, 0) + " (" + std::to_string(total) +
            " bytes) are not records (" + pending_.back().why +
            "); the writer records them when it next opens the log");
    pending_.clear();
  }
  if (report_.records == 0 && report_.lines == 0) {
    Add(FindingKind::kIncomplete, 0, 0, "the log is empty");
  }
  std::vector<std::pair<uint64_t, const Session*>> open;
  for (const auto& [id, s] : sessions_) {
    if (!s.closed) open.emplace_back(s.open_line, &s);
  }
  std::sort(open.begin(), open.end());
  for (const auto& [line, s] : open) {
    Add(FindingKind::kIncomplete, s->last_line, s->last_seq,
        "the session opened at line " + std::to_string(line) + " (writer pid " +
            std::to_string(s->writer_pid) +
            ") has no final checkpoint: its writer crashed or is still running, or the log was "
            "truncated after its last record at " +
            At(s->last_line, s->last_seq));
  }
  if (options_.anchor && !anchor_seen_) {
    Add(FindingKind::kTampered, 0, 0,
        "the --anchor names seq " + std::to_string(options_.anchor->seq) +
            ", which is not in the log (its last seq is " + std::to_string(report_.last_seq) +
            "): records were removed");
  }
  report_.signatures_checked = options_.key != nullptr;
  if (options_.key == nullptr) {
    Add(FindingKind::kNote, 0, 0,
        std::to_string(report_.checkpoints) +
            " checkpoint(s) parsed, signatures NOT checked (no --key): the hash chain alone "
            "does not stop someone who rewrites the whole log");
  } else if (report_.last_seq > last_verified_seq_) {
    Add(FindingKind::kNote, last_verified_line_, last_verified_seq_,
        std::to_string(report_.last_seq - last_verified_seq_) +
            " record(s) after the last verified checkpoint" +
            (last_verified_seq_ ? " (" + At(last_verified_line_, last_verified_seq_) + ")" : "") +
            " are covered by the hash chain only");
  }
  std::stable_sort(report_.findings.begin(), report_.findings.end(),
                   [](const Finding& a, const Finding& b) { return a.line < b.line; });
  return std::move(report_);
}

VerifyReport VerifyLogText(std::string_view text, const VerifyOptions& options) {
  LogVerifier v(options);
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      const std::string_view rest = text.substr(start);
      v.AddLine(rest.substr(0, std::min(rest.size(), kMaxLineBytes + 1)), false, rest.size());
      break;
    }
    const std::string_view line = text.substr(start, nl - start);
    v.AddLine(line.substr(0, std::min(line.size(), kMaxLineBytes + 1)), true, line.size());
    start = nl + 1;
  }
  return v.Finish();
}

Result<VerifyReport> VerifyLogFd(int fd, const VerifyOptions& options) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoError("stat of the audit log");
  if (!S_ISREG(st.st_mode)) return InvalidArgument("the audit log is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxLogFileBytes) {
    return InvalidArgument("the audit log is larger than 4 GiB: rotate logs before that");
  }
  LogVerifier v(options);
  std::string line;
  uint64_t line_length = 0;
  uint64_t total = 0;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("reading the audit log");
    if (n == 0) break;
    total += static_cast<uint64_t>(n);
    if (total > kMaxLogFileBytes) return InvalidArgument("the audit log grew past 4 GiB");
    for (ssize_t i = 0; i < n; ++i) {
      const char c = buf[static_cast<size_t>(i)];
      if (c == '\n') {
        v.AddLine(line, true, line_length);
        line.clear();
        line_length = 0;
      } else {
        if (line.size() <= kMaxLineBytes) line.push_back(c);
        ++line_length;
      }
    }
  }
  if (line_length > 0) v.AddLine(line, false, line_length);
  return v.Finish();
}

}  // namespace vmm::audit
