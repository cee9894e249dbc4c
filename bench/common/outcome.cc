#include "bench/common/outcome.h"

#include <string.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace bench {
namespace {

// Calls fn(line) for each line (without "\n" or "\r"); stops when fn returns true.
template <typename Fn>
void ForEachLine(std::string_view text, Fn fn) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (fn(line)) return;
    if (nl == std::string_view::npos) return;
    text.remove_prefix(nl + 1);
  }
}

bool ContainsNoCase(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

bool IsBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

}  // namespace

std::vector<std::string> DefaultFailLines() { return {"KVM internal error", "KVM: entry failed"}; }

std::string FindLine(std::string_view output, const std::vector<std::string>& needles) {
  std::string found;
  ForEachLine(output, [&](std::string_view line) {
    for (const std::string& n : needles) {
      if (!n.empty() && line.find(n) != std::string_view::npos) {
        found = line;
        return true;
      }
    }
    return false;
  });
  return found;
}

std::string FirstErrorLine(std::string_view output) {
  static constexpr std::string_view kWords[] = {
      "error",
      "fatal",
      "panic",
      "failed",
      "cannot",
      "could not",
      "unable",
      "abort",
      "killed",
      "bad system call",
      "segmentation fault",
  };
  std::string first, last;
  ForEachLine(output, [&](std::string_view line) {
    if (IsBlank(line)) return false;
    last = line;
    for (std::string_view w : kWords) {
      if (ContainsNoCase(line, w)) {
        first = line;
        return true;
      }
    }
    return false;
  });
  return first.empty() ? last : first;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) +
           (abbrev ? " (SIG" + std::string(abbrev) + ")" : "");
  }
  return "wait status " + std::to_string(status);
}

std::string CannotText(std::string_view verb, std::string_view line, std::string_view how) {
  std::string s = "cannot " + std::string(verb) + ": ";
  s += line.empty() ? "(no output)" : std::string(line);
  if (!how.empty()) s += " (" + std::string(how) + ")";
  return s;
}

std::string RatioCell(double ours, double peer) {
  if (!(ours > 0 && peer > 0)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", ours / peer);
  return text;
}

}  // namespace bench
