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

static_assert(kLandlockRemoveDir == LANDLOCK_ACCESS_FS_REMOVE_DIR);
static_assert(kLandlockRemoveFile == LANDLOCK_ACCESS_FS_REMOVE_FILE);

// "remove-file+remove-dir": the rights a note names (the ones grants use; others by bit).
std::string AccessNames(uint64_t access) {
  std::string out;
  for (int bit = 0; bit < 64; ++bit) {
    if (!(access & (1ULL << bit))) continue;
    if (!out.empty()) out += "+";
    if ((1ULL << bit) == LANDLOCK_ACCESS_FS_REMOVE_DIR) {
      out += "remove-dir";
    } else if ((1ULL << bit) == LANDLOCK_ACCESS_FS_REMOVE_FILE) {
      out += "remove-file";
    } else {
      out += "bit" + std::to_string(bit);
    }
  }
  return out.empty() ? "nothing" : out;
}

// Makes the ruleset (every right the ABI knows handled), adds `grants` and restricts the
// calling thread.
Result<void> Apply(int abi, std::span<const LandlockGrant> grants, bool scope_signals,
                   bool scope_abstract_unix) {
  RulesetAttr attr{LandlockHandledFs(abi), 0, 0};
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped =
        (scope_abstract_unix ? kScopeAbstractUnix : 0) | (scope_signals ? kScopeSignal : 0);
    size = sizeof(RulesetAttr);
  }
  UniqueFd ruleset(static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
  if (!ruleset.valid()) return ErrnoError("landlock_create_ruleset");
  for (const LandlockGrant& g : grants) {
    landlock_path_beneath_attr rule{g.access & attr.handled_access_fs, g.dir};
    if (rule.allowed_access == 0) continue;  // the kernel refuses an empty rule (ENOMSG)
    if (syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
      return ErrnoError("landlock_add_rule (fd " + std::to_string(g.dir) + ")");
    }
  }
  if (syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
    return ErrnoError("landlock_restrict_self");
  }
  return Ok();
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

uint64_t LandlockHandledFs(int abi) {
  uint64_t fs = kFsAbi1;
  if (abi >= 2) fs |= kFsRefer;
  if (abi >= 3) fs |= kFsTruncate;
  if (abi >= 5) fs |= kFsIoctlDev;
  return fs;
}

Result<std::string> RestrictFilesystem(int abi, std::span<const int> file_dirs) {
  const uint64_t file_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                               LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                               kFsTruncate;
  std::vector<LandlockGrant> grants;
  for (int dir : file_dirs) grants.push_back({dir, file_access});
  RETURN_IF_ERROR(Apply(abi, grants, /*scope_signals=*/true, /*scope_abstract_unix=*/true));
  std::string note = "Landlock ABI " + std::to_string(abi) + ": no filesystem access";
  if (!file_dirs.empty()) {
    note += " except regular files beneath " + std::to_string(file_dirs.size()) + " dir fd(s)";
  }
  if (abi >= 4) note += "; no TCP bind/connect";
  if (abi >= 6) note += "; signals and abstract unix sockets scoped";
  if (abi < 3) note += "; truncate() not handled before ABI 3";
  return note;
}

Result<std::string> RestrictLandlock(int abi, const LandlockRules& rules) {
  RETURN_IF_ERROR(Apply(abi, rules.grants, rules.scope_signals, rules.scope_abstract_unix));
  std::string note = "Landlock ABI " + std::to_string(abi) + ": no filesystem access";
  if (!rules.grants.empty()) {
    note += " except";
    const char* sep = " ";
    for (const LandlockGrant& g : rules.grants) {
      note += sep + AccessNames(g.access & LandlockHandledFs(abi)) + " beneath fd " +
              std::to_string(g.dir);
      sep = ", ";
    }
  }
  if (abi >= 4) note += "; no TCP bind/connect";
  if (abi >= 6) {
    if (rules.scope_abstract_unix) note += "; abstract unix sockets scoped";
    note += rules.scope_signals ? "; signals scoped" : "; signals not scoped";
  }
  return note;
}

}  // namespace vmm::sandbox
