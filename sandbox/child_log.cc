#include "sandbox/child_log.h"

#include <fcntl.h>
#include <time.h>

#include <cerrno>

#include "base/event_loop.h"

namespace vmm::sandbox {
namespace {

constexpr size_t kForwardBudget = 64 * 1024;

long long NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

}  // namespace

Result<ChildLog> ChildLog::Create(std::string prefix, int out_fd) {
  int p[2];
  // Not O_NONBLOCK for both: the flag belongs to each end's open file description, and the
  // child's end must block when full (EAGAIN would drop its line).
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoError("pipe2 (a child's log)");
  ChildLog log;
  log.read_.reset(p[0]);
  log.write_.reset(p[1]);
  const int flags = fcntl(p[0], F_GETFL);
  if (flags < 0 || fcntl(p[0], F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoError("fcntl(O_NONBLOCK) on a child's log");
  }
  log.prefix_ = std::move(prefix);
  log.out_fd_ = out_fd;
  return log;
}

void ChildLog::Emit(std::string_view line) {
  std::string out = prefix_;
  out.reserve(prefix_.size() + line.size() + 1);
  for (char c : line) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 && c != '\t') || u == 0x7f ? '?' : c;
  }
  out += '\n';
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = write(out_fd_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our own stderr is gone: nothing better to do with the line
    done += static_cast<size_t>(n);
  }
}

bool ChildLog::ReadSome(size_t* budget) {
  char buf[4096];
  ssize_t n = read(read_.get(), buf, sizeof(buf));
  if (n < 0 && errno == EINTR) return true;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    *budget = 0;
    return true;
  }
  if (n <= 0) {
    if (!partial_.empty()) Emit(partial_);
    partial_.clear();
    eof_ = true;
    read_.reset();
    return false;
  }
  *budget = static_cast<size_t>(n) >= *budget ? 0 : *budget - static_cast<size_t>(n);
  partial_.append(buf, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    Emit(std::string_view(partial_).substr(start, nl - start));
  }
  partial_.erase(0, start);
  while (partial_.size() >= kMaxLine) {
    Emit(std::string_view(partial_).substr(0, kMaxLine));
    partial_.erase(0, kMaxLine);
  }
  return true;
}

void ChildLog::Forward() {
  size_t budget = kForwardBudget;
  while (!eof_ && read_.valid() && budget > 0 && ReadSome(&budget)) {
  }
}

void ChildLog::ForwardToEnd(int timeout_ms) {
  const long long deadline = NowMs() + timeout_ms;
  while (!eof_ && read_.valid()) {
    Forward();
    if (eof_) break;
    long long left = timeout_ms < 0 ? -1 : deadline - NowMs();
    if (timeout_ms >= 0 && left <= 0) break;
    if (!EventLoop::WaitFd(read_.get(), EPOLLIN, static_cast<int>(left))) break;
  }
  if (!eof_ && !partial_.empty()) {  // a writer still holds the pipe: say what we have
    Emit(partial_);
    partial_.clear();
  }
}

}  // namespace vmm::sandbox
