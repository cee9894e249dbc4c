// Times whole VMM processes booting the same guest: from fork to the first line on the
// guest's serial console, and to the process's exit, with the peak RSS the kernel accounted
// for it. Runs the commands alternately (A B A B ...) so drift on a shared machine hits both.
//
//   boot_bench --runs 10 --name vmm -- build/bin/vmm run --kernel G
//              --vs-name qemu -- qemu-system-x86_64 -M microvm ... -kernel G   (one line)
//
// Prints one row per figure: median, min, max for each command and the median ratio A/B.
//
// A command that cannot boot the payload must not fail or stall the bench (bench/common/
// run.h): each command first gets one untimed warm-up run, which is also its probe. If that
// fails (non-zero exit, no --marker, a fail line such as QEMU's "KVM internal error", no
// exit within --timeout, no output for --stall), the command is not run again, its column
// reads "cannot boot" and the line below the table gives its first error line. Runs that
// fail later are left out of the medians and counted.
// Exit status: 0 when the first command (ours) booted, 1 when it could not, 2 usage.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/common/run.h"

namespace {

struct Sample {
  double first_line_ms = -1;
  double exit_ms = -1;
  double peak_rss_mib = 0;
};

struct Column {
  std::string name;
  std::vector<std::string> cmd;
  std::vector<Sample> samples;  // successful timed runs only
  std::string cannot;           // set: the probe failed; "cannot boot: ..."
  int failed = 0;               // timed runs that failed
  std::string first_failure;
};

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

[[noreturn]] void Usage() {
  std::fprintf(
      stderr,
      "usage: boot_bench [--runs N] [--marker TEXT] [--timeout S] [--stall S]\n"
      "                  [--fail-on TEXT]... --name A -- CMD... [--vs-name B -- CMD...]\n");
  std::exit(2);
}

// One run; on failure returns false and fills `why` with "cannot boot: ...".
bool RunOnce(const Column& c, const bench::RunLimits& limits, Sample* s, std::string* why) {
  bench::RunResult r = bench::RunCommand(c.cmd, limits);
  s->first_line_ms = r.seen_ms[0];
  s->exit_ms = r.exit_ms;
  s->peak_rss_mib = r.peak_rss_mib;
  if (r.ok() && s->first_line_ms >= 0) return true;
  std::string how = r.how;
  if (r.ok()) how = "exit status 0, but no \"" + limits.watch[0] + "\" in its output";
  *why = bench::CannotText("boot", r.WhyLine(), how);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 10;
  bench::RunLimits limits;
  limits.watch = {"\n"};
  std::vector<bench::NamedCommand> named;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--marker" && i + 1 < argc) {
      limits.watch = {argv[++i]};
    } else if (!bench::ParseCommonFlag(argc, argv, i, runs, limits, named)) {
      Usage();
    }
  }
  std::vector<Column> cols;
  for (bench::NamedCommand& n : named)
    cols.push_back({std::move(n.name), std::move(n.cmd), {}, {}, 0, {}});
  if (cols.empty() || runs < 1 || !(limits.timeout_s > 0) || limits.stall_s < 0) Usage();
  for (const Column& c : cols) {
    if (c.cmd.empty()) Usage();
  }

  // Warm-up (page cache, KVM module state) and probe: can this command boot the payload?
  for (Column& c : cols) {
    Sample s;
    std::string why;
    if (!RunOnce(c, limits, &s, &why)) c.cannot = why;
  }
  for (int r = 0; r < runs; ++r) {
    for (Column& c : cols) {
      if (!c.cannot.empty()) continue;
      Sample s;
      std::string why;
      if (RunOnce(c, limits, &s, &why)) {
        c.samples.push_back(s);
      } else if (c.failed++ == 0) {
        c.first_failure = why;
      }
    }
  }
  for (Column& c : cols) {
    if (c.cannot.empty() && c.samples.empty()) c.cannot = c.first_failure;
  }

  std::printf("%-24s", "figure (median of runs)");
  for (const Column& c : cols) std::printf(" %16s", c.name.c_str());
  if (cols.size() == 2) std::printf(" %10s", "ratio");
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
    for (const Column& c : cols) {
      if (!c.cannot.empty()) {
        med.push_back(-1);
        std::printf(" %16s", "cannot boot");
        continue;
      }
      std::vector<double> v;
      for (const Sample& s : c.samples) v.push_back(row.get(s));
      med.push_back(Median(v));
      std::printf(" %16.1f", med.back());
    }
    if (cols.size() == 2) std::printf(" %10s", bench::RatioCell(med[0], med[1]).c_str());
    std::printf("\n");
  }
  for (const Column& c : cols) {
    if (!c.cannot.empty()) {
      std::printf("%s: %s\n", c.name.c_str(), c.cannot.c_str());
      continue;
    }
    std::vector<double> exit_ms;
    for (const Sample& s : c.samples) exit_ms.push_back(s.exit_ms);
    std::printf("%s: %d runs, exit min %.1f ms max %.1f ms, %d runs failed%s%s\n", c.name.c_str(),
                runs, *std::min_element(exit_ms.begin(), exit_ms.end()),
                *std::max_element(exit_ms.begin(), exit_ms.end()), c.failed,
                c.failed ? "; the first: " : "", c.first_failure.c_str());
  }
  return cols[0].cannot.empty() ? 0 : 1;
}
