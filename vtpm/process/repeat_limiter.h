// Collapses a run of identical log lines: the first is written, the repeats are counted
// and summarised ("last line repeated N more times") when a different line comes, when
// `window` has passed since the line was last written, or on Flush(). A condition that
// recurs in a loop then costs a line per window, not a line per turn.
//
//   RepeatLimiter limit([](const std::string& l) { Log(l); });
//   limit.Log("accept4: Too many open files");   // written
//   limit.Log("accept4: Too many open files");   // counted
//   limit.Flush();                               // "last line repeated 1 more time"
//
// Ownership: holds `sink`; not thread-safe (the server is single-threaded).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace vmm::vtpm {

class RepeatLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RepeatLimiter(std::function<void(const std::string&)> sink,
                         std::chrono::milliseconds window = std::chrono::seconds(10))
      : sink_(std::move(sink)), window_(window) {}

  void Log(const std::string& line, Clock::time_point now = Clock::now()) {
    if (have_last_ && line == last_ && now - written_ < window_) {
      ++repeats_;
      return;
    }
    Flush();
    Write(line);
    last_ = line;
    have_last_ = true;
    written_ = now;
  }

  // Writes the summary of the repeats not yet reported, if any.
  void Flush() {
    if (repeats_ == 0) return;
    Write("last line repeated " + std::to_string(repeats_) + " more time" +
          (repeats_ == 1 ? "" : "s"));
    repeats_ = 0;
  }

 private:
  void Write(const std::string& line) {
    if (sink_) sink_(line);
  }

  std::function<void(const std::string&)> sink_;
  std::chrono::milliseconds window_;
  std::string last_;
  bool have_last_ = false;
  Clock::time_point written_{};
  size_t repeats_ = 0;
};

}  // namespace vmm::vtpm
