// milestones: runs a command, reads its output (stdout and stderr, merged) as it arrives and
// reports, in milliseconds since the command was started, when each given pattern is first
// seen. The timestamps are taken here, outside the guest, as the bytes arrive: a guest's own
// clock says nothing about how long the host took to get it there.
//
//   milestones [--log FILE] [--echo PREFIX] [--timeout SECS] [--stall SECS]
//              [--milestone NAME=TEXT]... [--fail-on TEXT]... -- COMMAND [ARGS...]
//
// Output on stdout, one line per event, as it happens:
//   milestone NAME MS            TEXT first seen MS ms after the start (empty TEXT: first byte)
//   milestone NAME missing       (at the end) TEXT never appeared
//   milestone timeout MS         --timeout expired; the command's process group was killed
//   milestone stall MS           no output for --stall SECS; the process group was killed
//   milestone error MS LINE      a line containing a --fail-on TEXT (e.g. QEMU's "KVM internal
//                                error", after which QEMU pauses instead of exiting); the
//                                process group was stopped at once
//   milestone last-line LINE     (only with --fail-on: at the end, when the command failed and
//                                printed no --fail-on line) its last non-empty output line
//   milestone exit MS status=N   the command ended with exit status N (128+S: signal S)
// With --echo PREFIX every output line is also copied to stdout behind PREFIX (whole lines
// only, so that milestone lines never split one); --log FILE gets the output byte for byte.
//
// Exit status: the command's (128+S when killed by signal S); 124 on --timeout or --stall;
// 123 on a --fail-on line; 125 usage or internal error; 126/127 the command could not be run.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

enum ExitStatus : int {
  kExitFailLine = 123,
  kExitTimeout,
  kExitInternal,
  kExitCannotRun,  // as a shell says of a command it cannot execute
  kExitNotFound,   // and of one it cannot find
};

using Clock = std::chrono::steady_clock;

struct Milestone {
  std::string name;
  std::string text;  // empty: the first byte of output
  bool seen = false;
};

volatile sig_atomic_t g_child_pgid = 0;
volatile sig_atomic_t g_forwarded_signal = 0;

void ForwardSignal(int sig) {
  g_forwarded_signal = sig;
  if (g_child_pgid > 0) kill(-g_child_pgid, sig);
}

[[noreturn]] void Usage(const char* msg) {
  if (msg) std::fprintf(stderr, "milestones: %s\n", msg);
  std::fprintf(
      stderr,
      "usage: milestones [--log FILE] [--echo PREFIX] [--timeout SECS] [--stall SECS]\n"
      "                  [--milestone NAME=TEXT]... [--fail-on TEXT]... -- COMMAND [ARGS...]\n");
  std::exit(kExitInternal);
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void Emit(const std::string& line) {
  // stdout is written with write(2) only, so milestone and echoed lines never interleave
  // inside a line, whatever buffering stdio would do.
  WriteAll(STDOUT_FILENO, line.data(), line.size());
}

long long MsSince(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t - t0).count();
}

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string log_path;
  std::string echo_prefix;
  bool echo = false;
  double timeout_s = 0;
  double stall_s = 0;
  std::vector<Milestone> milestones;
  std::vector<std::string> fail_on;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* opt) -> std::string {
      if (i + 1 >= argc) Usage((std::string(opt) + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--") {
      ++i;
      break;
    } else if (a == "--log") {
      log_path = value("--log");
    } else if (a == "--echo") {
      echo_prefix = value("--echo");
      echo = true;
    } else if (a == "--timeout" || a == "--stall") {
      std::string v = value(a == "--timeout" ? "--timeout" : "--stall");
      char* end = nullptr;
      double secs = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(secs > 0) || secs > 1e7) {
        Usage("--timeout and --stall need a positive number of seconds");
      }
      (a == "--timeout" ? timeout_s : stall_s) = secs;
    } else if (a == "--milestone") {
      std::string v = value("--milestone");
      size_t eq = v.find('=');
      if (eq == std::string::npos) Usage("--milestone needs NAME=TEXT");
      Milestone m{v.substr(0, eq), v.substr(eq + 1)};
      if (!ValidName(m.name) || m.name == "exit" || m.name == "timeout" || m.name == "stall" ||
          m.name == "error" || m.name == "last-line") {
        Usage(
            "milestone names are 1-64 of [A-Za-z0-9_.-], not exit, timeout, stall, error or "
            "last-line");
      }
      milestones.push_back(std::move(m));
    } else if (a == "--fail-on") {
      std::string v = value("--fail-on");
      if (v.empty()) Usage("--fail-on needs a non-empty TEXT");
      fail_on.push_back(std::move(v));
    } else if (a == "-h" || a == "--help") {
      Usage(nullptr);
    } else {
      Usage(("unknown option '" + std::string(a) + "' (put the command after --)").c_str());
    }
  }
  if (i >= argc) Usage("no command given");
  char** cmd = argv + i;

  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      std::fprintf(stderr, "milestones: cannot open log '%s': %s\n", log_path.c_str(),
                   std::strerror(errno));
      return kExitInternal;
    }
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    std::perror("milestones: pipe2");
    return kExitInternal;
  }
  // Reports the exec failure of the child (errno), or EOF when exec succeeded.
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) < 0) {
    std::perror("milestones: pipe2");
    return kExitInternal;
  }

  struct sigaction sa {};
  sa.sa_handler = ForwardSignal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const Clock::time_point t0 = Clock::now();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("milestones: fork");
    return kExitInternal;
  }
  if (pid == 0) {
    // Own process group, so that a timeout or a forwarded signal reaches all of it.
    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) signal(s, SIG_DFL);
    if (dup2(fds[1], STDOUT_FILENO) < 0 || dup2(fds[1], STDERR_FILENO) < 0) _exit(kExitInternal);
    execvp(cmd[0], cmd);
    int e = errno;
    (void)!write(exec_pipe[1], &e, sizeof(e));
    _exit(e == ENOENT ? kExitNotFound : kExitCannotRun);
  }
  setpgid(pid, pid);  // also here, so that it holds before any kill below
  g_child_pgid = pid;
  close(fds[1]);
  close(exec_pipe[1]);
  {
    int e = 0;
    ssize_t n;
    do n = read(exec_pipe[0], &e, sizeof(e));
    while (n < 0 && errno == EINTR);
    close(exec_pipe[0]);
    if (n == sizeof(e)) {
      std::fprintf(stderr, "milestones: cannot run '%s': %s\n", cmd[0], std::strerror(e));
      int st;
      waitpid(pid, &st, 0);
      return e == ENOENT ? kExitNotFound : kExitCannotRun;
    }
  }

  size_t keep = 0;  // bytes of earlier output kept so a pattern split across reads matches
  for (const Milestone& m : milestones) keep = std::max(keep, m.text.size());
  std::string window;
  std::string echo_line;
  std::string line;       // the output line being assembled, for --fail-on
  std::string last_line;  // the last non-empty complete line
  bool fail_line_seen = false;
  std::vector<char> buf(1 << 16);
  bool eof = false;
  bool timed_out = false;
  bool stop_now = false;  // a --fail-on line: stop the command as on a timeout
  bool exited = false;
  int status = 0;
  Clock::time_point exit_time{};
  Clock::time_point drain_deadline{};
  auto secs = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const auto deadline = t0 + secs(timeout_s);
  Clock::time_point last_output = t0;

  while (!eof) {
    int wait_ms = 200;
    if (exited) {
      // The command is gone but something it started still holds the pipe: read what is
      // there, briefly, and stop.
      if (Clock::now() >= drain_deadline) break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, wait_ms);
    Clock::time_point now = Clock::now();
    if (n < 0 && errno != EINTR) {
      std::perror("milestones: poll");
      break;
    }
    if (n > 0) {
      ssize_t r = read(fds[0], buf.data(), buf.size());
      now = Clock::now();
      if (r < 0 && errno != EINTR && errno != EAGAIN) {
        std::perror("milestones: read");
        break;
      }
      if (r == 0) eof = true;
      if (r > 0) {
        last_output = now;
        std::string_view chunk(buf.data(), static_cast<size_t>(r));
        if (log_fd >= 0 && !WriteAll(log_fd, chunk.data(), chunk.size())) {
          std::fprintf(stderr, "milestones: writing the log failed: %s\n", std::strerror(errno));
          close(log_fd);
          log_fd = -1;
        }
        if (echo) {
          std::string out;
          for (char c : chunk) {
            if (c == '\r') continue;
            echo_line.push_back(c);
            if (c == '\n') {
              out += echo_prefix;
              out += echo_line;
              echo_line.clear();
            }
          }
          if (!out.empty()) Emit(out);
        }
        window.append(chunk);
        for (Milestone& m : milestones) {
          if (m.seen) continue;
          bool hit = m.text.empty() ? true : window.find(m.text) != std::string::npos;
          if (hit) {
            m.seen = true;
            Emit("milestone " + m.name + " " + std::to_string(MsSince(t0, now)) + "\n");
          }
        }
        if (window.size() > keep) window.erase(0, window.size() - keep);
        for (char c : chunk) {
          if (c != '\n') {
            if (c != '\r' && line.size() < 4096) line.push_back(c);
            continue;
          }
          if (!line.empty()) last_line = line;
          for (const std::string& f : fail_on) {
            if (!fail_line_seen && line.find(f) != std::string::npos) {
              fail_line_seen = stop_now = true;
              Emit("milestone error " + std::to_string(MsSince(t0, now)) + " " + line + "\n");
            }
          }
          line.clear();
        }
      }
    }
    if (!exited) {
      int st;
      pid_t w = waitpid(pid, &st, WNOHANG);
      if (w == pid) {
        exited = true;
        status = st;
        exit_time = Clock::now();
        drain_deadline = exit_time + std::chrono::seconds(2);
      }
    }
    bool over_time = timeout_s > 0 && now >= deadline;
    bool stalled = stall_s > 0 && now - last_output >= secs(stall_s);
    if (!exited && !timed_out && (over_time || stalled || stop_now)) {
      timed_out = true;
      if (!stop_now) {
        Emit(std::string("milestone ") + (over_time ? "timeout " : "stall ") +
             std::to_string(MsSince(t0, now)) + "\n");
      }
      kill(-pid, SIGTERM);
      // Give it 5 s to stop (the VMM flushes and reports), then kill.
      for (int k = 0; k < 50; ++k) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
          exited = true;
          break;
        }
        usleep(100000);
      }
      if (!exited) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        exited = true;
      }
      exit_time = Clock::now();
      drain_deadline = exit_time + std::chrono::seconds(2);
    }
  }
  close(fds[0]);
  if (!exited) {
    waitpid(pid, &status, 0);
    exit_time = Clock::now();
  }
  if (echo && !echo_line.empty()) Emit(echo_prefix + echo_line + "\n");
  if (log_fd >= 0) close(log_fd);

  if (!line.empty()) last_line = line;
  for (const Milestone& m : milestones) {
    if (!m.seen) Emit("milestone " + m.name + " missing\n");
  }
  int rc;
  if (WIFEXITED(status)) {
    rc = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    rc = 128 + WTERMSIG(status);
  } else {
    rc = kExitInternal;
  }
  if (!fail_on.empty() && (timed_out || rc != 0) && !fail_line_seen) {
    Emit("milestone last-line " + (last_line.empty() ? std::string("(no output)") : last_line) +
         "\n");
  }
  Emit("milestone exit " + std::to_string(MsSince(t0, exit_time)) +
       " status=" + std::to_string(rc) + "\n");
  if (fail_line_seen) return kExitFailLine;
  if (timed_out) return kExitTimeout;
  return rc;
}
