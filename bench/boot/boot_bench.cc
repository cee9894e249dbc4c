// Times whole VMM processes booting the same guest: from fork to the first line on the
// guest's serial console, and to the process's exit, with the peak RSS the kernel accounted
// for it. Runs the commands alternately (A B A B ...) so drift on a shared machine hits both.
//
//   boot_bench --runs 10 --name vmm -- build/bin/vmm run --kernel G
//              --vs-name qemu -- qemu-system-x86_64 -M microvm ... -kernel G   (one line)
//
// Prints one row per figure: median, min, max for each command and the median ratio A/B.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Sample {
  double first_line_ms = -1;
  double exit_ms = -1;
  double peak_rss_mib = 0;
  int status = 0;
};

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Sample RunOnce(const std::vector<std::string>& argv, const std::string& marker, int timeout_s) {
  Sample s;
  int out[2];
  if (pipe(out) < 0) std::exit(3);
  double start = NowMs();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    int devnull = open("/dev/null", 0);
    if (devnull >= 0) dup2(devnull, 0);
    close(out[0]);
    close(out[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  std::string seen;
  char buf[4096];
  while (true) {
    pollfd p{out[0], POLLIN, 0};
    double left = start + timeout_s * 1e3 - NowMs();
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
    if (s.first_line_ms < 0 && seen.find(marker) != std::string::npos) {
      s.first_line_ms = NowMs() - start;
    }
  }
  close(out[0]);
  rusage ru{};
  wait4(pid, &s.status, 0, &ru);
  s.exit_ms = NowMs() - start;
  s.peak_rss_mib = ru.ru_maxrss / 1024.0;
  return s;
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void Usage() {
  std::fprintf(stderr,
               "usage: boot_bench [--runs N] [--marker TEXT] [--timeout S] --name A -- CMD... "
               "[--vs-name B -- CMD...]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 10, timeout_s = 120;
  std::string marker = "\n";
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> cmds;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (a == "--marker" && i + 1 < argc) {
      marker = argv[++i];
    } else if (a == "--timeout" && i + 1 < argc) {
      timeout_s = std::atoi(argv[++i]);
    } else if ((a == "--name" || a == "--vs-name") && i + 2 < argc &&
               std::string(argv[i + 2]) == "--") {
      names.push_back(argv[i + 1]);
      cmds.emplace_back();
      for (i += 3; i < argc && std::string(argv[i]) != "--vs-name"; ++i) cmds.back().push_back(argv[i]);
      --i;
    } else {
      Usage();
    }
  }
  if (cmds.empty() || runs < 1) Usage();
  std::vector<std::vector<Sample>> samples(cmds.size());
  RunOnce(cmds[0], marker, timeout_s);  // warm-up: page cache, KVM module state
  for (int r = 0; r < runs; ++r) {
    for (size_t c = 0; c < cmds.size(); ++c) samples[c].push_back(RunOnce(cmds[c], marker, timeout_s));
  }
  auto column = [&](size_t c, auto field) {
    std::vector<double> v;
    for (const Sample& s : samples[c]) v.push_back(field(s));
    return v;
  };
  std::printf("%-24s", "figure (median of runs)");
  for (const auto& n : names) std::printf(" %16s", n.c_str());
  if (cmds.size() == 2) std::printf(" %10s", "ratio");
  std::printf("\n");
  struct Row {
    const char* label;
    double (*get)(const Sample&);
  } rows[] = {
      {"first serial line (ms)", [](const Sample& s) { return s.first_line_ms; }},
      {"process exit (ms)", [](const Sample& s) { return s.exit_ms; }},
      {"peak RSS (MiB)", [](const Sample& s) { return s.peak_rss_mib; }},
  };
  for (const Row& row : rows) {
    std::printf("%-24s", row.label);
    std::vector<double> med;
    for (size_t c = 0; c < cmds.size(); ++c) {
      med.push_back(Median(column(c, row.get)));
      std::printf(" %16.1f", med.back());
    }
    if (cmds.size() == 2 && med[1] > 0) std::printf(" %10.2f", med[0] / med[1]);
    std::printf("\n");
  }
  for (size_t c = 0; c < cmds.size(); ++c) {
    auto exit_ms = column(c, [](const Sample& s) { return s.exit_ms; });
    int bad = 0;
    for (const Sample& s : samples[c]) {
      if (!WIFEXITED(s.status) || WEXITSTATUS(s.status) != 0 || s.first_line_ms < 0) ++bad;
    }
    std::printf("%s: %d runs, exit min %.1f ms max %.1f ms, %d runs failed or printed nothing\n",
                names[c].c_str(), runs, *std::min_element(exit_ms.begin(), exit_ms.end()),
                *std::max_element(exit_ms.begin(), exit_ms.end()), bad);
  }
  return 0;
}
