#include "sandbox/seccomp_audit.h"

#include <fcntl.h>
#include <seccomp.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "base/unique_fd.h"

namespace vmm::sandbox {
namespace {

// The decimal after `key` (which ends in '='), or -1.
long long FieldAfter(std::string_view line, std::string_view key) {
  size_t at = 0;
  while ((at = line.find(key, at)) != std::string_view::npos) {
    // A whole field: at the start or after a space, not the tail of "auid=" for "uid=".
    if (at == 0 || line[at - 1] == ' ') break;
    at += key.size();
  }
  if (at == std::string_view::npos) return -1;
  long long v = 0;
  size_t i = at + key.size();
  if (i >= line.size() || line[i] < '0' || line[i] > '9') return -1;
  for (; i < line.size() && line[i] >= '0' && line[i] <= '9' && v < (1LL << 40); ++i) {
    v = v * 10 + (line[i] - '0');
  }
  return v;
}

}  // namespace

std::optional<int> ParseSeccompAuditLine(std::string_view line, pid_t pid) {
  if (line.find("type=1326") == std::string_view::npos) return std::nullopt;
  if (FieldAfter(line, "pid=") != pid) return std::nullopt;
  long long nr = FieldAfter(line, "syscall=");
  if (nr < 0 || nr > 4096) return std::nullopt;
  return static_cast<int>(nr);
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  std::string s =
      name ? std::string(name) + " (" + std::to_string(nr) + ")" : "syscall " + std::to_string(nr);
  std::free(name);
  return s;
}

std::optional<std::string> SeccompKilledSyscall(pid_t pid, int wait_ms) {
  UniqueFd kmsg(open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!kmsg.valid()) return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  char record[8192];
  for (;;) {
    ssize_t n = read(kmsg.get(), record, sizeof(record));
    if (n > 0) {
      if (auto nr = ParseSeccompAuditLine(std::string_view(record, static_cast<size_t>(n)), pid)) {
        return SyscallName(*nr);
      }
      continue;
    }
    if (n < 0 && errno == EPIPE) continue;  // records overwritten while we read: go on
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace vmm::sandbox
