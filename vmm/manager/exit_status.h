// The `vmm` command's exit statuses, and the one way it reports an error.
//
//   if (!r) return Fail(r.error());   // "vmm: error: ..." on stderr; 2 for bad input, else 1
#pragma once

#include <cstdio>

#include "base/result.h"

namespace vmm {

inline constexpr int kExitFailed = 1;  // the VM or the command failed
inline constexpr int kExitUsage = 2;   // bad input: flags, files, configuration

inline int Fail(const Error& e) {
  std::fprintf(stderr, "vmm: error: %s\n", e.ToString().c_str());
  return e.kind() == ErrorKind::kInvalidArgument ? kExitUsage : kExitFailed;
}

}  // namespace vmm
