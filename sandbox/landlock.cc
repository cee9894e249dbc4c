#include "sandbox/landlock.h"

#include <linux/landlock.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "base/unique_fd.h"

namespace vmm::sandbox {
namespace {

// Access rights by the ABI that introduced them (include/uapi/linux/landlock.h).
constexpr uint64_t kFsAbi1 = (1ULL << 13) - 1;  // EXECUTE .. MAKE_SYM, Linux 5.13
constexpr uint64_t kFsRefer = 1ULL << 13;       // ABI 2, Linux 5.19
constexpr uint64_t kFsTruncate = 1ULL << 14;    // ABI 3, Linux 6.2
constexpr uint64_t kFsIoctlDev = 1ULL << 15;    // ABI 5, Linux 6.10
constexpr uint64_t kNetBindTcp = 1ULL << 0;     // ABI 4, Linux 6.7
constexpr uint64_t kNetConnectTcp = 1ULL << 1;
constexpr uint64_t kScopeAbstractUnix = 1ULL << 0;  // ABI 6, Linux 6.12
constexpr uint64_t kScopeSignal = 1ULL << 1;

// struct landlock_ruleset_attr as of ABI 6. The kernel takes a prefix of it (its size
// argument) and rejects non-zero bytes it does not know (copy_struct_from_user), so the
// size passed follows the ABI.
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

uint64_t HandledFs(int abi) {
  uint64_t fs = kFsAbi1;
  if (abi >= 2) fs |= kFsRefer;
  if (abi >= 3) fs |= kFsTruncate;
  if (abi >= 5) fs |= kFsIoctlDev;
  return fs;
}

}  // namespace

Result<int> LandlockAbi() {
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi >= 1) return static_cast<int>(abi);
  if (errno == ENOSYS) {
    return Error(ErrorKind::kUnsupported, "kernel built without Landlock (ENOSYS)");
  }
  if (errno == EOPNOTSUPP) {
    return Error(ErrorKind::kUnsupported,
                 "Landlock is built in but not enabled at boot (add it to lsm=)");
  }
  return Error(ErrorKind::kSystem, "landlock_create_ruleset(VERSION)", errno);
}

Result<std::string> RestrictFilesystem(int abi, std::span<const int> file_dirs) {
  RulesetAttr attr{HandledFs(abi), 0, 0};
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
    size = sizeof(RulesetAttr);
  }
  UniqueFd ruleset(static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
  if (!ruleset.valid()) return ErrnoError("landlock_create_ruleset");

  const uint64_t file_access =
      (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG |
       LANDLOCK_ACCESS_FS_REMOVE_FILE | kFsTruncate) &
      attr.handled_access_fs;
  for (int dir : file_dirs) {
    landlock_path_beneath_attr rule{file_access, dir};
    if (syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
      return ErrnoError("landlock_add_rule (fd " + std::to_string(dir) + ")");
    }
  }
  if (syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
    return ErrnoError("landlock_restrict_self");
  }
  std::string note = "Landlock ABI " + std::to_string(abi) + ": no filesystem access";
  if (!file_dirs.empty()) {
    note += " except regular files beneath " + std::to_string(file_dirs.size()) + " dir fd(s)";
  }
  if (abi >= 4) note += "; no TCP bind/connect";
  if (abi >= 6) note += "; signals and abstract unix sockets scoped";
  if (abi < 3) note += "; truncate() not handled before ABI 3";
  return note;
}

}  // namespace vmm::sandbox
