#include "bench/common/run.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bench {
namespace {

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

std::string Ms(double ms) { return std::to_string(static_cast<long long>(ms)) + " ms"; }
std::string Secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

// SIGTERM to the group, SIGKILL 2 s later, then reaps the child. The child is only reaped
// after the group's last SIGKILL, so that its pgid cannot have been reused by then. Keeps
// draining the pipe so that a child blocked writing to it sees the signal and goes.
void Stop(pid_t pid, int out_fd, RunResult& r, rusage& ru) {
  kill(-pid, SIGTERM);
  const double kill_at = NowMs() + 2000;
  char buf[4096];
  while (NowMs() < kill_at) {
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      break;
    }
    pollfd p{out_fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0 && read(out_fd, buf, sizeof(buf)) <= 0) usleep(50000);
  }
  kill(-pid, SIGKILL);  // the child if it is still there, and whatever else of its group
  while (wait4(pid, &r.status, 0, &ru) < 0 && errno == EINTR) {
  }
}

}  // namespace

bool RunResult::ok() const {
  return end == RunEnd::kExited && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string RunResult::WhyLine() const {
  return end == RunEnd::kFailLine ? fail_line : FirstErrorLine(output);
}

RunResult RunCommand(const std::vector<std::string>& argv, const RunLimits& limits,
                     const LineFn& on_line) {
  RunResult r;
  r.seen_ms.assign(limits.watch.size(), -1);
  int out[2];
  if (argv.empty() || pipe2(out, O_CLOEXEC) < 0) {
    r.how = "could not start (pipe)";
    return r;
  }
  const double start = NowMs();
  pid_t pid = fork();
  if (pid < 0) {
    close(out[0]);
    close(out[1]);
    r.how = "could not start (fork)";
    return r;
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "cannot execute %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so that it holds before any kill below
  close(out[1]);

  size_t keep = 0;  // bytes kept so that a watched string split across reads still matches
  for (const auto& w : limits.watch) keep = std::max(keep, w.size());
  std::string window, partial;
  double deadline = start + limits.timeout_s * 1e3;
  double last_output = start;
  bool done = false;
  rusage ru{};
  char buf[4096];
  auto line_done = [&](std::string_view line, double at) {
    while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (r.fail_line.empty() && !FindLine(line, limits.fail_lines).empty()) {
      r.fail_line = line;
      r.how = "stopped on this line " + Ms(at - start) + " after start";
      r.end = RunEnd::kFailLine;
    }
    if (on_line && on_line(line, at - start) && !done) {
      done = true;
      deadline = std::min(deadline, at + limits.done_grace_s * 1e3);
    }
  };
  bool eof = false;
  while (r.end == RunEnd::kNotStarted) {
    double now = NowMs();
    double until = deadline;
    if (limits.stall_s > 0) until = std::min(until, last_output + limits.stall_s * 1e3);
    if (now >= until) {
      if (done) {
        r.end = RunEnd::kNoExitAfterDone;
        r.how = "payload done, but no exit within " + Secs(limits.done_grace_s);
      } else if (now >= deadline) {
        r.end = RunEnd::kTimeout;
        r.how = "no exit within " + Secs(limits.timeout_s);
      } else {
        r.end = RunEnd::kStall;
        r.how = "no output for " + Secs(limits.stall_s) + ", " + Ms(now - start) + " after start";
      }
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(until - now) + 1);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    ssize_t got = read(out[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof = true;
      break;
    }
    const double at = NowMs();
    last_output = at;
    std::string_view chunk(buf, static_cast<size_t>(got));
    r.output.append(chunk);
    window.append(chunk);
    for (size_t i = 0; i < limits.watch.size(); ++i) {
      if (r.seen_ms[i] < 0 && window.find(limits.watch[i]) != std::string::npos)
        r.seen_ms[i] = at - start;
    }
    if (window.size() > keep) window.erase(0, window.size() - keep);
    partial.append(chunk);
    for (size_t nl; (nl = partial.find('\n')) != std::string::npos; partial.erase(0, nl + 1)) {
      line_done(std::string_view(partial).substr(0, nl), at);
    }
  }
  if (eof) {
    if (!partial.empty()) line_done(partial, NowMs());
    while (wait4(pid, &r.status, 0, &ru) < 0 && errno == EINTR) {
    }
    r.exit_ms = NowMs() - start;
    if (r.end == RunEnd::kNotStarted) {
      r.end = RunEnd::kExited;
      r.how = DescribeWaitStatus(r.status);
    }
  } else {
    Stop(pid, out[0], r, ru);
    r.exit_ms = NowMs() - start;
  }
  close(out[0]);
  r.peak_rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  return r;
}

bool ParseCommonFlag(int argc, char** argv, int& i, int& runs, RunLimits& limits,
                     std::vector<NamedCommand>& commands) {
  const std::string a = argv[i];
  if (a == "--runs" && i + 1 < argc) {
    runs = std::atoi(argv[++i]);
  } else if (a == "--timeout" && i + 1 < argc) {
    limits.timeout_s = std::atof(argv[++i]);
  } else if (a == "--stall" && i + 1 < argc) {
    limits.stall_s = std::atof(argv[++i]);
  } else if (a == "--fail-on" && i + 1 < argc) {
    limits.fail_lines.push_back(argv[++i]);
  } else if ((a == "--name" || a == "--vs-name") && i + 2 < argc &&
             std::string(argv[i + 2]) == "--") {
    commands.push_back({argv[i + 1], {}});
    for (i += 3; i < argc && std::string(argv[i]) != "--vs-name"; ++i) {
      commands.back().cmd.push_back(argv[i]);
    }
    --i;
  } else {
    return false;
  }
  return true;
}

}  // namespace bench
