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
//
// A command that cannot run the guest must not fail or stall the bench (bench/common/run.h):
// a run that does not reach "exits: done" (it exited early, printed a fail line such as
// QEMU's "KVM internal error", did not exit within --timeout or was silent for --stall) is
// stopped at once; if it was the command's first run, the command is not run again, its
// columns read "cannot run" and the notes give its first error line.
// Exit status: 0 when the first command (ours) ran, 1 when it could not, 2 usage.
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

#include "bench/common/run.h"

namespace {

struct Figure {
  double cycles_per_iter = -1;
  double wall_ns_per_iter = -1;
  std::string skipped;  // the guest's reason, when it could not measure this figure
};

struct Sample {
  std::map<std::string, Figure> figures;
  bool done = false;  // the guest printed "exits: done"
  bench::RunResult run;
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
void ParseLine(const std::string& line, double at_ns, Sample& s,
               std::map<std::string, double>& begun) {
  char name[64];
  unsigned long long n = 0, cycles = 0;
  if (std::sscanf(line.c_str(), "exits: begin %63s", name) == 1) {
    begun[name] = at_ns;
  } else if (std::sscanf(line.c_str(), "exits: result %63s n=%llu cycles=%llu", name, &n,
                         &cycles) == 3 &&
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

Sample RunOnce(const std::vector<std::string>& argv, const bench::RunLimits& limits) {
  Sample s;
  std::map<std::string, double> begun;
  s.run = bench::RunCommand(argv, limits, [&](std::string_view line, double at_ms) {
    ParseLine(std::string(line), at_ms * 1e6, s, begun);
    return s.done;  // after "done" the guest powers off: done_grace_s to do so
  });
  return s;
}

// A run that did not get through the guest, as "cannot run: <line> (<how>)".
std::string WhyNotDone(const Sample& s) {
  std::string how = s.run.how;
  if (s.run.end == bench::RunEnd::kExited) how += ", before \"exits: done\"";
  return bench::CannotText("run", s.run.WhyLine(), how);
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void Usage() {
  std::fprintf(stderr,
               "usage: exits_bench [--runs N] [--timeout S] [--stall S] [--fail-on TEXT]...\n"
               "                   --name A -- CMD... [--vs-name B -- CMD...]\n");
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
  int runs = 5;
  bench::RunLimits limits;
  limits.timeout_s = 300;
  limits.stall_s = 60;
  std::vector<bench::NamedCommand> named;
  for (int i = 1; i < argc; ++i) {
    if (!bench::ParseCommonFlag(argc, argv, i, runs, limits, named)) Usage();
  }
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> cmds;
  for (bench::NamedCommand& n : named) {
    names.push_back(std::move(n.name));
    cmds.push_back(std::move(n.cmd));
  }
  if (cmds.empty() || cmds.size() > 2 || runs < 1 || !(limits.timeout_s > 0) ||
      limits.stall_s < 0) {
    Usage();
  }
  for (const auto& c : cmds) {
    if (c.empty()) Usage();
  }

  const double tsc_before = TscPerNs(200);
  std::vector<std::vector<Sample>> samples(cmds.size());
  std::vector<std::string> cannot(cmds.size());  // set: the first run failed; not run again
  for (int r = 0; r < runs; ++r) {
    for (size_t c = 0; c < cmds.size(); ++c) {
      if (!cannot[c].empty()) continue;
      samples[c].push_back(RunOnce(cmds[c], limits));
      const Sample& s = samples[c].back();
      if (!s.done) {
        std::fprintf(stderr, "exits_bench: %s run %d: guest did not finish; its output:\n%s\n",
                     names[c].c_str(), r + 1, s.run.output.c_str());
        if (r == 0) cannot[c] = WhyNotDone(s);
      }
    }
  }
  const double tsc_per_ns = (tsc_before + TscPerNs(200)) / 2;
  std::printf(
      "TSC %.3f GHz (calibrated on this host against CLOCK_MONOTONIC); %d runs each, "
      "medians\n",
      tsc_per_ns, runs);

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
      if (!cannot[c].empty()) {
        std::printf(" %11s %9s %9s", "cannot run", "-", "-");
      } else if (cyc.empty()) {
        std::printf(" %11s %9s %9s", "n/a", "n/a", "n/a");
        notes[c].push_back(std::string(row.key) +
                           ": n/a: " + (skipped.empty() ? "no result in any run" : skipped));
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
      std::printf(" %7s", bench::RatioCell(med_cycles[0], med_cycles[1]).c_str());
    }
    std::printf("\n");
  }
  for (size_t c = 0; c < cmds.size(); ++c) {
    if (!cannot[c].empty()) {
      std::printf("%s: %s\n", names[c].c_str(), cannot[c].c_str());
      continue;
    }
    int bad = 0;
    const Sample* first_bad = nullptr;
    for (const Sample& s : samples[c]) {
      bool good = s.done && s.run.ok();
      if (!good && !first_bad) first_bad = &s;
      bad += !good;
    }
    std::printf("%s: %d runs, %d did not finish or exit cleanly\n", names[c].c_str(), runs, bad);
    if (first_bad) {
      std::printf(
          "  %s: the first: %s\n", names[c].c_str(),
          first_bad->done
              ? bench::CannotText("exit", first_bad->run.WhyLine(), first_bad->run.how).c_str()
              : WhyNotDone(*first_bad).c_str());
    }
    for (const std::string& n : notes[c]) std::printf("  %s %s\n", names[c].c_str(), n.c_str());
  }
  return cannot[0].empty() ? 0 : 1;
}
