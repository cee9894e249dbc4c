// A confined child's diagnostics, carried to its parent through a pipe: the child's stderr
// is the pipe's write end, and the parent writes each line it reads to its own stderr
// behind a prefix naming the child.
//
//   ASSIGN_OR_RETURN(ChildLog log, ChildLog::Create("vmm: vtpm: "));
//   o.stderr_fd = log.write_end();            // SpawnRole makes it the child's fd 2
//   ASSIGN_OR_RETURN(pid_t pid, SpawnRole(o, path, argv));
//   log.CloseWriteEnd();                       // the child holds the only one now
//   ... wait for log.fd() to be readable (an EventLoop), then log.Forward() ...
//   log.ForwardToEnd();                        // once the child ended: every last byte
//
// Why: RLIMIT_FSIZE bounds what a process may write to a regular file (0 for device-rng,
// 4 MiB for vtpm, sandbox/roles.cc), and a write past it fails with EFBIG (the child is
// pid 1 of its namespace, which ignores SIGXFSZ). Were the child's stderr the parent's own
// and that a regular file (`vmm run ... 2>vm.log`), its lines would be lost. A pipe is not
// a regular file, so the limit never applies to the log, and the parent (unlimited) writes
// the file.
//
// The prefix comes from the parent, so a line says truly which process wrote it. Bytes the
// child writes are forwarded as lines: control characters other than tab become '?', a
// line longer than kMaxLine is cut into pieces, a last line without a newline is forwarded
// at EOF. The child blocks when the pipe is full and the parent is not reading: it waits,
// nothing is dropped.
//
// Ownership: ChildLog owns the read end, and the write end until CloseWriteEnd(). Move-only.
#pragma once

#include <unistd.h>

#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm::sandbox {

class ChildLog {
 public:
  static constexpr size_t kMaxLine = 4096;

  // A new pipe. Lines go to `out_fd` (borrowed; the parent's stderr by default).
  static Result<ChildLog> Create(std::string prefix, int out_fd = STDERR_FILENO);
  ChildLog() = default;

  int write_end() const { return write_.get(); }
  void CloseWriteEnd() { write_.reset(); }
  // The read end while there may be more to read; -1 after EOF (closed: a watcher must
  // forget it).
  int fd() const { return eof_ ? -1 : read_.get(); }
  bool at_eof() const { return eof_; }

  // Forwards the complete lines that can be read now without blocking (at most 64 KiB a
  // call, so a chatty child cannot hold the parent's event loop).
  void Forward();
  // Reads until EOF, waiting up to `timeout_ms` (-1: no limit) for the write end to close,
  // and forwards everything, a last unterminated line included. Call it once the child has
  // ended: then only its exit closes the write end and the wait is for buffered bytes.
  void ForwardToEnd(int timeout_ms = 1000);

 private:
  // Returns false at EOF or on an error (then the log is treated as ended).
  bool ReadSome(size_t* budget);
  void Emit(std::string_view line);

  std::string prefix_;
  int out_fd_ = STDERR_FILENO;
  UniqueFd read_;
  UniqueFd write_;
  std::string partial_;
  bool eof_ = false;
};

}  // namespace vmm::sandbox
