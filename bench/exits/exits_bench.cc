// Runs VMMs that boot bench/exits' guest (exits_guest.elf) and tabulates what it reports: TSC
// cycles per MMIO read, per port read and per virtio-blk request, as medians over runs. The
// commands run alternately (A B A B ...) so drift on a shared machine hits both.
//
//   exits_bench --runs 5 --name vmm -- build/bin/vmm run --kernel G ...
//               --vs-name qemu -- qemu-system-x86_64 -M microvm ... -kernel G   (one line)
//
// Cycles become nanoseconds with this host's TSC rate, calibrated here against
// CLOCK_MONOTONIC: a KVM guest's TSC ticks at the host's rate (no TSC scaling is set up by
// either VMM). As a cross-check the wall time between the guest's "begin" and "result"
// lines, as this process saw them arrive, is divided by the iteration count ("wall ns").
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

struct Figure {
  double cycles_per_iter = -1;
  double wall_ns_per_iter = -1;
  std::string skipped;  // the guest's reason, when it could not measure this figure
};

struct Sample {
  std::map<std::string, Figure> figures;
  bool done = false;         // the guest printed "exits: done"
  bool killed = false;       // it did not exit by itself after that
  int status = 0;
  std::string output;
};

double NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// TSC ticks per nanosecond, over `ms` milliseconds of CLOCK_MONOTONIC.
double TscPerNs(int ms) {
  double t0 = NowNs();
  uint64_t c0 = __rdtsc();
  timespec d{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&d, nullptr);
  uint64_t c1 = __rdtsc();
  double t1 = NowNs();
  return static_cast<double>(c1 - c0) / (t1 - t0);
}

// "exits: result NAME n=N cycles=C" / "exits: begin NAME" / "exits: skip NAME reason=R".
void ParseLine(const std::string& line, double at_ns, Sample& s, std::map<std::string, double>& begun) {
  char name[64];
  unsigned long long n = 0, cycles = 0;
  if (std::sscanf(line.c_str(), "exits: begin %63s", name) == 1) {
    begun[name] = at_ns;
  } else if (std::sscanf(line.c_str(), "exits: result %63s n=%llu cycles=%llu", name, &n, &cycles) == 3 &&
             n > 0) {
    Figure& f = s.figures[name];
    f.cycles_per_iter = static_cast<double>(cycles) / static_cast<double>(n);
    if (begun.count(name)) f.wall_ns_per_iter = (at_ns - begun[name]) / static_cast<double>(n);
  } else if (std::sscanf(line.c_str(), "exits: skip %63s", name) == 1) {
    size_t r = line.find("reason=");
    s.figures[name].skipped = r == std::string::npos ? "skipped" : line.substr(r + 7);
  } else if (line.rfind("exits: done", 0) == 0) {
    s.done = true;
  }
}

Sample RunOnce(const std::vector<std::string>& argv, int timeout_s) {
  Sample s;
  int out[2];
  if (pipe(out) < 0) std::exit(3);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);  // the VMM's own messages: kept with the output, shown if a run fails
    close(out[0]);
    close(out[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  const double start = NowNs();
  double deadline = start + timeout_s * 1e9;
  std::map<std::string, double> begun;
  std::string partial;
  char buf[4096];
  while (true) {
    double left_ms = (deadline - NowNs()) / 1e6;
    if (left_ms <= 0) {
      kill(pid, SIGKILL);
      s.killed = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left_ms) + 1) <= 0) continue;
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    double at = NowNs();
    s.output.append(buf, static_cast<size_t>(n));
    partial.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = partial.find('\n')) != std::string::npos; partial.erase(0, nl + 1)) {
      bool was_done = s.done;
      ParseLine(partial.substr(0, nl), at, s, begun);
      // After "done" the guest powers off; allow it a few seconds to do so.
      if (s.done && !was_done) deadline = std::min(deadline, at + 5e9);
    }
  }
  close(out[0]);
  waitpid(pid, &s.status, 0);
  return s;
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string LastLines(const std::string& text, int n) {
  size_t pos = text.size();
  if (pos && text[pos - 1] == '\n') --pos;
  while (n-- > 0 && pos != std::string::npos && pos > 0) pos = text.rfind('\n', pos - 1);
  std::string tail = text.substr(pos == std::string::npos ? 0 : pos + 1);
  if (!tail.empty() && tail.back() != '\n') tail += '\n';
  std::string indented;
  for (size_t i = 0; i < tail.size();) {
    size_t nl = tail.find('\n', i);
    indented += "    " + tail.substr(i, nl - i + 1);
    i = nl + 1;
  }
  return indented;
}

void Usage() {
  std::fprintf(stderr,
               "usage: exits_bench [--runs N] [--timeout S] --name A -- CMD... "
               "[--vs-name B -- CMD...]\n");
  std::exit(2);
}

struct Row {
  const char* key;
  const char* label;
};
constexpr Row kRows[] = {
    {"mmio", "(1) MMIO read (virtio reg)"},
    {"pio", "(2) port read 0x3FF"},
    {"blk", "(3) virtio-blk 512 B READ"},
};

}  // namespace

int main(int argc, char** argv) {
  int runs = 5, timeout_s = 300;
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> cmds;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
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
  if (cmds.empty() || cmds.size() > 2 || runs < 1 || timeout_s < 1) Usage();

  const double tsc_before = TscPerNs(200);
  std::vector<std::vector<Sample>> samples(cmds.size());
  for (int r = 0; r < runs; ++r) {
    for (size_t c = 0; c < cmds.size(); ++c) {
      samples[c].push_back(RunOnce(cmds[c], timeout_s));
      const Sample& s = samples[c].back();
      if (!s.done) {
        std::fprintf(stderr, "exits_bench: %s run %d: guest did not finish; its output:\n%s\n",
                     names[c].c_str(), r + 1, s.output.c_str());
      }
    }
  }
  const double tsc_per_ns = (tsc_before + TscPerNs(200)) / 2;
  std::printf("TSC %.3f GHz (calibrated on this host against CLOCK_MONOTONIC); %d runs each, "
              "medians\n", tsc_per_ns, runs);

  // Columns: per command, cycles / ns from the TSC / ns from wall clock; then the ratio.
  std::printf("%-28s", "figure (per exit / request)");
  for (const auto& n : names) {
    std::printf(" %11s %9s %9s", (n + " cyc").c_str(), "ns", "wall ns");
  }
  if (cmds.size() == 2) std::printf(" %7s", "ratio");
  std::printf("\n");
  std::map<size_t, std::vector<std::string>> notes;
  for (const Row& row : kRows) {
    std::printf("%-28s", row.label);
    std::vector<double> med_cycles;
    for (size_t c = 0; c < cmds.size(); ++c) {
      std::vector<double> cyc, wall;
      std::string skipped;
      for (const Sample& s : samples[c]) {
        auto it = s.figures.find(row.key);
        if (it == s.figures.end()) continue;
        if (it->second.cycles_per_iter >= 0) cyc.push_back(it->second.cycles_per_iter);
        if (it->second.wall_ns_per_iter >= 0) wall.push_back(it->second.wall_ns_per_iter);
        if (!it->second.skipped.empty()) skipped = it->second.skipped;
      }
      med_cycles.push_back(Median(cyc));
      if (cyc.empty()) {
        std::printf(" %11s %9s %9s", "n/a", "n/a", "n/a");
        notes[c].push_back(std::string(row.key) + ": n/a: " +
                           (skipped.empty() ? "no result in any run" : skipped));
      } else {
        std::printf(" %11.0f %9.0f %9.0f", med_cycles.back(), med_cycles.back() / tsc_per_ns,
                    Median(wall));
        char spread[160];
        std::snprintf(spread, sizeof(spread), "%s: cycles over runs min %.0f max %.0f", row.key,
                      *std::min_element(cyc.begin(), cyc.end()),
                      *std::max_element(cyc.begin(), cyc.end()));
        notes[c].push_back(spread);
        if (cyc.size() < static_cast<size_t>(runs)) {
          notes[c].push_back(std::string(row.key) + ": only " + std::to_string(cyc.size()) +
                             " of " + std::to_string(runs) + " runs reported it");
        }
      }
    }
    if (cmds.size() == 2) {
      if (med_cycles[0] > 0 && med_cycles[1] > 0) {
        std::printf(" %7.2f", med_cycles[0] / med_cycles[1]);
      } else {
        std::printf(" %7s", "n/a");
      }
    }
    std::printf("\n");
  }
  int failed = 0;
  for (size_t c = 0; c < cmds.size(); ++c) {
    int bad = 0, killed = 0, nonzero = 0;
    const Sample* first_nonzero = nullptr;
    for (const Sample& s : samples[c]) {
      if (!s.done) ++bad;
      if (s.killed) ++killed;
      if (!s.killed && (!WIFEXITED(s.status) || WEXITSTATUS(s.status) != 0)) {
        ++nonzero;
        if (!first_nonzero) first_nonzero = &s;
      }
    }
    failed += bad;
    std::printf("%s: %d runs, %d did not finish, %d killed (no exit after the guest was done), "
                "%d exited non-zero\n", names[c].c_str(), runs, bad, killed, nonzero);
    if (first_nonzero) {
      std::printf("  %s: first non-zero exit (status 0x%x), its last lines:\n%s", names[c].c_str(),
                  first_nonzero->status, LastLines(first_nonzero->output, 3).c_str());
    }
    for (const std::string& n : notes[c]) std::printf("  %s %s\n", names[c].c_str(), n.c_str());
  }
  return failed ? 1 : 0;
}
