// ChildLog: a child's stderr through a pipe to the parent, which forwards it line by line
// behind a prefix. Nothing is lost when the child dies mid-line or writes more than the
// pipe holds, and the log stops being pollable at EOF (no busy event loop).
#include "sandbox/child_log.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace vmm::sandbox {
namespace {

// The parent's "stderr": a memfd read back whole.
struct Sink {
  int fd = memfd_create("child-log-sink", MFD_CLOEXEC);
  ~Sink() { close(fd); }
  std::string Text() const {
    std::string out(static_cast<size_t>(lseek(fd, 0, SEEK_END)), '\0');
    if (pread(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) return "?";
    return out;
  }
};

// Forks a writer whose stderr is the log's write end; it writes `bytes` and exits.
pid_t Writer(ChildLog& log, const std::string& bytes) {
  pid_t pid = fork();
  if (pid == 0) {
    dup2(log.write_end(), STDERR_FILENO);
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = write(STDERR_FILENO, bytes.data() + done, bytes.size() - done);
      if (n <= 0) _exit(1);
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  log.CloseWriteEnd();
  return pid;
}

int Wait(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

TEST(ChildLog, LinesArrivePrefixedAndALastUnterminatedLineIsNotLost) {
  Sink sink;
  auto log = ChildLog::Create("vmm: vtpm: ", sink.fd);
  ASSERT_TRUE(log.has_value()) << log.error().ToString();
  pid_t pid = Writer(*log, "one\n\ntwo\x1b[31m red\r\nthree, then the child died");
  EXPECT_TRUE(WIFEXITED(Wait(pid)));
  log->ForwardToEnd();
  EXPECT_EQ(sink.Text(),
            "vmm: vtpm: one\nvmm: vtpm: \nvmm: vtpm: two?[31m red?\n"
            "vmm: vtpm: three, then the child died\n");
  EXPECT_TRUE(log->at_eof());
  EXPECT_EQ(log->fd(), -1) << "a log at EOF must drop out of poll, or the loop spins on POLLHUP";
}

TEST(ChildLog, AChildThatWritesMoreThanThePipeHoldsLosesNothing) {
  Sink sink;
  auto log = ChildLog::Create("c: ", sink.fd);
  ASSERT_TRUE(log.has_value());
  std::string bytes;
  for (int i = 0; bytes.size() < (1u << 20); ++i) bytes += "line " + std::to_string(i) + "\n";
  pid_t pid = Writer(*log, bytes);  // blocks on the full pipe until we read
  while (!log->at_eof()) {
    pollfd p{log->fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 10000), 1);
    log->Forward();
  }
  int st = Wait(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  const std::string text = sink.Text();
  const auto lines = static_cast<size_t>(std::count(bytes.begin(), bytes.end(), '\n'));
  EXPECT_EQ(text.size(), bytes.size() + 3 * lines);  // every line, each behind "c: "
  EXPECT_EQ(text.rfind("c: line 0\n", 0), 0u);
  const std::string last = bytes.substr(bytes.rfind('\n', bytes.size() - 2) + 1);
  EXPECT_EQ(text.substr(text.size() - last.size() - 3), "c: " + last);
}

TEST(ChildLog, AnOverlongLineIsCutNotBuffered) {
  Sink sink;
  auto log = ChildLog::Create("", sink.fd);
  ASSERT_TRUE(log.has_value());
  pid_t pid = Writer(*log, std::string(ChildLog::kMaxLine + 10, 'a') + "\n");
  Wait(pid);
  log->ForwardToEnd();
  EXPECT_EQ(sink.Text(), std::string(ChildLog::kMaxLine, 'a') + "\n" + std::string(10, 'a') + "\n");
}

TEST(ChildLog, ForwardToEndGivesUpWhenAWriterStaysAlive) {
  Sink sink;
  auto log = ChildLog::Create("", sink.fd);
  ASSERT_TRUE(log.has_value());
  ASSERT_EQ(write(log->write_end(), "partial", 7), 7);  // we keep the write end open
  log->ForwardToEnd(50);
  EXPECT_EQ(sink.Text(), "partial\n");
  EXPECT_FALSE(log->at_eof());
}

}  // namespace
}  // namespace vmm::sandbox
