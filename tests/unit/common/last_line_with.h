// LastLineWith: the last line of `text` that contains `needle` (without its newline), or "" if
// none does; for tests that look for one forwarded log line in a child's output.
//
//   std::string landlock = LastLineWith(log, "vmm-device: landlock:");
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace vmm::testing_util {

inline std::string LastLineWith(const std::string& text, std::string_view needle) {
  std::istringstream lines(text);
  std::string line, found;
  while (std::getline(lines, line)) {
    if (line.find(needle) != std::string::npos) found = line;
  }
  return found;
}

}  // namespace vmm::testing_util
