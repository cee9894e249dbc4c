#include "vmm/manager/audit/audit_trail.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "base/hex.h"
#include "vmm/manager/audit/log_format.h"

namespace vmm::audit {

// What the end of the log holds: the chain's head and the lines after it that are not records.
struct AuditTrail::Tail {
  std::string prev;  // hash of the last record's line, or the genesis value
  uint64_t seq = 0;  // the last record's seq, 0 without one
  std::vector<Fragment> fragments;
  bool unterminated = false;  // the file does not end in '\n'
};

namespace {

// Enough for kMaxFragments lines of the longest size and the record before them.
constexpr size_t kTailWindow = (kMaxFragments + 1) * (kMaxLineBytes + 1);

class FileLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {}
  ~FileLock() {
    if (locked_) flock(fd_, LOCK_UN);
  }
  Result<void> Lock() {
    while (flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) return ErrnoError("locking the audit log (flock)");
    }
    locked_ = true;
    return Ok();
  }

 private:
  int fd_;
  bool locked_ = false;
};

Result<void> WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("appending to the audit log");
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<std::string> RandomSessionId() {
  uint8_t id[16];
  size_t got = 0;
  while (got < sizeof(id)) {
    ssize_t n = getrandom(id + got, sizeof(id) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("getrandom for the audit session id");
    got += static_cast<size_t>(n);
  }
  return HexBytes(id);
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Result<std::unique_ptr<AuditTrail>> AuditTrail::Open(const Options& options) {
  if (options.path.empty()) return InvalidArgument("audit log: no path");
  std::unique_ptr<AuditTrail> t(new AuditTrail());
  t->path_ = options.path;
  t->checkpoint_every_ = options.checkpoint_every;
  t->owner_ = getpid();
  if (!options.checkpoint_key.empty()) {
    auto signer = CheckpointSigner::Load(options.checkpoint_key);
    if (!signer) return signer.error().Wrap("audit checkpoint key");
    t->signer_ = std::move(signer).value();
  }
  ASSIGN_OR_RETURN(t->session_, RandomSessionId());

  const char* path = options.path.c_str();
  bool created = true;
  t->fd_.reset(open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!t->fd_.valid() && errno == EEXIST) {
    created = false;
    t->fd_.reset(open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW));
  }
  if (!t->fd_.valid()) {
    return Error(errno == ELOOP ? ErrorKind::kInvalidArgument : ErrorKind::kSystem,
                 "opening the audit log '" + options.path + "'" +
                     (errno == ELOOP ? " (a symlink: refused)" : ""),
                 errno);
  }
  struct stat st {};
  if (fstat(t->fd_.get(), &st) != 0) return ErrnoError("stat of the audit log");
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument("the audit log '" + options.path + "' is not a regular file");
  }
  if (st.st_uid != geteuid()) {
    return InvalidArgument("the audit log '" + options.path + "' belongs to uid " +
                           std::to_string(st.st_uid) + ", not to this user");
  }
  if ((st.st_mode & 022) != 0) {
    return InvalidArgument("the audit log '" + options.path +
                           "' may be written by group or others: chmod 600 it");
  }
  if (created) {
    // The new name must survive a crash as well as the records in it.
    UniqueFd dir(open(DirName(options.path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid() || fsync(dir.get()) != 0)
      return ErrnoError("fsync of the audit log's directory");
  }
  {
    std::lock_guard<std::mutex> hold(t->mutex_);
    RETURN_IF_ERROR(t->AppendLocked(/*final_checkpoint=*/false, nullptr, /*open_record=*/true));
  }
  if (!t->torn_tail_report_.empty()) {
    std::fprintf(stderr, "vmm: warning: audit log %s: %s\n", path, t->torn_tail_report_.c_str());
  }
  if (options.linux_audit) t->linux_audit_ = std::make_unique<LinuxAuditSink>();
  t->closed_ = false;  // from now on the destructor writes the final checkpoint
  return t;
}

AuditTrail::~AuditTrail() {
  if (!closed_ && owner_ == getpid()) {
    auto r = Close();
    if (!r)
      std::fprintf(stderr, "vmm: warning: audit log %s: %s\n", path_.c_str(),
                   r.error().ToString().c_str());
  }
}

std::string AuditTrail::linux_audit_status() const {
  if (!linux_audit_) return "";
  return linux_audit_->status();
}

Result<AuditTrail::Tail> AuditTrail::ScanTail() {
  struct stat st {};
  if (fstat(fd_.get(), &st) != 0) return ErrnoError("stat of the audit log");
  Tail tail;
  tail.prev = GenesisPrev();
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return tail;
  const uint64_t window = std::min<uint64_t>(size, kTailWindow);
  std::string bytes(window, '\0');
  size_t got = 0;
  while (got < window) {
    ssize_t n =
        pread(fd_.get(), bytes.data() + got, window - got, static_cast<off_t>(size - window + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("reading the end of the audit log");
    if (n == 0) return Error(ErrorKind::kSystem, "the audit log shrank while it was read");
    got += static_cast<size_t>(n);
  }
  const bool whole_file = window == size;
  auto not_ours = [&] {
    return InvalidArgument("the end of the audit log '" + path_ +
                           "' is not records of this format (more than " +
                           std::to_string(kMaxFragments) +
                           " lines that are not, or a line over 64 KiB): refusing to append; "
                           "check it with vmm audit verify and start a new log");
  };
  // Walk back line by line: [start, end) is the line before the '\n' at `end`.
  size_t end;  // the '\n' that ends the line to look at next; npos when none is left
  std::vector<Fragment> fragments;  // in reverse file order
  if (bytes.back() != '\n') {
    const size_t nl = bytes.rfind('\n');
    if (nl == std::string::npos && !whole_file) return not_ours();
    const size_t start = nl == std::string::npos ? 0 : nl + 1;
    const std::string_view frag(bytes.data() + start, bytes.size() - start);
    fragments.push_back({frag.size(), Sha256Hex(frag)});
    tail.unterminated = true;
    end = nl;  // npos: the fragment is the whole file
  } else {
    end = bytes.size() - 1;
  }
  while (end != std::string::npos) {
    const size_t nl = end == 0 ? std::string::npos : bytes.rfind('\n', end - 1);
    if (nl == std::string::npos && !whole_file) return not_ours();
    const size_t start = nl == std::string::npos ? 0 : nl + 1;
    const std::string_view line(bytes.data() + start, end - start);
    auto record = ParseRecord(line);
    if (record) {
      tail.prev = LineHash(line);
      tail.seq = record->seq;
      break;
    }
    if (fragments.size() >= kMaxFragments) return not_ours();
    fragments.push_back({line.size(), Sha256Hex(line)});
    end = nl;
  }
  tail.fragments.assign(fragments.rbegin(), fragments.rend());
  return tail;
}

Result<std::string> AuditTrail::CheckpointLine(uint64_t seq, const std::string& prev, bool final) {
  audit::Record c;
  c.type = RecordType::kCheckpoint;
  c.seq = seq;
  c.time = NowRfc3339Utc();
  c.session = session_;
  c.prev = prev;
  c.final = final;
  c.alg = signer_ ? "ES256" : "none";
  c.key_fpr = signer_ ? signer_->fingerprint() : "";
  if (signer_) {
    ASSIGN_OR_RETURN(c.sig, signer_->Sign(CheckpointMessage(c)));
  }
  return SerializeRecord(c);
}

Result<void> AuditTrail::AppendLocked(bool final_checkpoint, const Event* event, bool open_record) {
  FileLock lock(fd_.get());
  RETURN_IF_ERROR(lock.Lock());
  struct stat st {};
  if (fstat(fd_.get(), &st) != 0) return ErrnoError("stat of the audit log");

  uint64_t seq = last_seq_;
  std::string head = head_;
  std::string buf;
  std::string torn_report;
  if (st.st_size != expected_end_) {
    // Another writer appended, our last write failed, or this is the first: read the end.
    ASSIGN_OR_RETURN(Tail tail, ScanTail());
    seq = tail.seq;
    head = tail.prev;
    if (!tail.fragments.empty()) {
      if (tail.unterminated) buf += '\n';
      audit::Record torn;
      torn.type = RecordType::kTornTail;
      torn.seq = ++seq;
      torn.time = NowRfc3339Utc();
      torn.session = session_;
      torn.prev = head;
      torn.fragments = tail.fragments;
      const std::string line = SerializeRecord(torn);
      buf += line + '\n';
      head = LineHash(line);
      uint64_t bytes = 0;
      for (const Fragment& f : tail.fragments) bytes += f.bytes;
      torn_report = "its last " + std::to_string(tail.fragments.size()) + " line(s) (" +
                    std::to_string(bytes) +
                    " bytes) were not complete records (a write cut short by a crash); kept, and "
                    "described by the torn-tail record seq " +
                    std::to_string(torn.seq);
    }
  }
  auto add = [&](audit::Record r) {
    r.seq = ++seq;
    r.time = NowRfc3339Utc();
    r.session = session_;
    r.prev = head;
    const std::string line = SerializeRecord(r);
    buf += line + '\n';
    head = LineHash(line);
    return line.size();
  };
  uint32_t since = since_checkpoint_;
  if (open_record) {
    audit::Record o;
    o.type = RecordType::kOpen;
    o.writer_pid = static_cast<int32_t>(getpid());
    o.writer_uid = geteuid();
    o.key_fpr = signer_ ? signer_->fingerprint() : "";
    add(std::move(o));
  }
  if (event != nullptr) {
    audit::Record e;
    e.type = RecordType::kEvent;
    e.event = *event;
    if (add(std::move(e)) > kMaxEventLineBytes) {
      return InvalidArgument("audit event '" + event->action + "' is over " +
                             std::to_string(kMaxEventLineBytes) + " bytes as a record");
    }
    ++since;
  }
  if (final_checkpoint || (checkpoint_every_ != 0 && since >= checkpoint_every_)) {
    ASSIGN_OR_RETURN(std::string line, CheckpointLine(++seq, head, final_checkpoint));
    buf += line + '\n';
    head = LineHash(line);
    since = 0;
  }

  auto written = WriteAll(fd_.get(), buf);
  if (written && fsync(fd_.get()) != 0) written = ErrnoError("fsync of the audit log");
  if (!written) {
    expected_end_ = -1;  // whatever reached the file, the next append reads the end again
    return written.error().Wrap("audit log '" + path_ + "'");
  }
  expected_end_ = st.st_size + static_cast<off_t>(buf.size());
  last_seq_ = seq;
  head_ = head;
  since_checkpoint_ = since;
  if (!torn_report.empty()) torn_tail_report_ = torn_report;
  return Ok();
}

Result<void> AuditTrail::Record(const Event& event) {
  if (owner_ != getpid()) {
    return Error(ErrorKind::kInternal, "the audit trail was opened by another process");
  }
  RETURN_IF_ERROR(ValidateEvent(event));
  {
    std::lock_guard<std::mutex> hold(mutex_);
    if (closed_) return Error(ErrorKind::kInternal, "the audit trail is closed");
    RETURN_IF_ERROR(AppendLocked(/*final_checkpoint=*/false, &event, /*open_record=*/false));
    if (linux_audit_ && linux_audit_->enabled()) {
      for (const LinuxAuditRecord& r : LinuxAuditRecordsFor(event)) {
        if (!linux_audit_->Send(r)) break;
      }
    }
    if (linux_audit_ && !linux_audit_->enabled() && !linux_audit_noted_) {
      linux_audit_noted_ = true;
      std::fprintf(stderr,
                   "vmm: note: Linux audit records are not sent (%s); the audit log %s has "
                   "every record\n",
                   linux_audit_->status().c_str(), path_.c_str());
    }
  }
  return Ok();
}

Result<void> AuditTrail::Close() {
  if (owner_ != getpid()) {
    return Error(ErrorKind::kInternal, "the audit trail was opened by another process");
  }
  std::lock_guard<std::mutex> hold(mutex_);
  if (closed_) return Ok();
  closed_ = true;
  auto r = AppendLocked(/*final_checkpoint=*/true, nullptr, /*open_record=*/false);
  fd_.reset();
  return r;
}

}  // namespace vmm::audit
