// A seccomp allowlist built from named syscall sets, one rule a line with its reason.
//
//   ASSIGN_OR_RETURN(Policy p, PolicyBuilder("rng").AllowExit().AllowReadWrite()
//                                  .AllowIf("getrandom", {ArgMaskedEq(2, ~GRND_NONBLOCK, 0)},
//                                  "why") .Build());
//   RETURN_IF_ERROR(p.Apply({}));   // irreversible: the calling process is now filtered
//
// Modelled on sandbox2's PolicyBuilder: every builder call adds rules, the first mistake
// (unknown syscall, contradictory rules, a bad argument index) is kept and returned by
// Build(), so a role's policy reads as a list and is checked when it is built, not when the
// filter is loaded in a child. The default action of every filter is SCMP_ACT_KILL_PROCESS:
// a syscall not listed ends the whole process with SIGSYS (seccomp(2)).
//
// Argument conditions compare the raw 64-bit register seccomp sees. Where the kernel reads
// a 32-bit parameter (ioctl's `unsigned int cmd`, fcntl's `unsigned int cmd`, futex's
// `int op`, open flags), the condition masks to 32 bits, matching what the kernel acts on.
// Pointers are never compared: seccomp cannot read user memory (and a check of it would be
// a TOCTOU race), which is why path-taking syscalls are bounded by dirfd + Landlock instead.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::sandbox {

enum class CmpOp { kEq, kMaskedEq };

// (arg & mask) == value, with mask all ones for kEq. The value is either a literal or a
// named parameter resolved when the filter is loaded (fd numbers, the process's own pid).
struct ArgCondition {
  unsigned arg = 0;  // 0..5
  CmpOp op = CmpOp::kEq;
  uint64_t mask = ~0ULL;
  uint64_t value = 0;
  std::string param;  // non-empty: value comes from PolicyParams[param]
  std::string label;  // how the value prints ("KVM_RUN", "FUTEX_WAIT")
};

ArgCondition ArgEq(unsigned arg, uint64_t value, std::string label = "");
ArgCondition ArgMaskedEq(unsigned arg, uint64_t mask, uint64_t value, std::string label = "");
// arg == PolicyParams[param], e.g. ArgEqParam(0, "image_fd").
ArgCondition ArgEqParam(unsigned arg, std::string param);

// Values for named parameters. "self_pid" is filled in by Apply() from getpid().
using PolicyParams = std::map<std::string, uint64_t>;

enum class RuleAction { kAllow, kErrno };

struct SyscallRule {
  std::string name;                      // "ioctl"
  int nr = -1;                           // x86_64 number, resolved by libseccomp
  std::vector<ArgCondition> conditions;  // all must hold; empty: always
  RuleAction action = RuleAction::kAllow;
  int errno_value = 0;  // for kErrno
  std::string reason;
  bool risky = false;  // printed as "RISKY:" with the reason
};

// A built, checked policy. Copyable data; loading it is the only side effect.
class Policy {
 public:
  const std::string& name() const { return name_; }
  const std::vector<SyscallRule>& rules() const { return rules_; }

  // True if some rule lets `syscall` through (with or without conditions).
  bool Mentions(std::string_view syscall) const;
  // The parameters the rules refer to, besides "self_pid".
  std::vector<std::string> RequiredParams() const;

  // One rule a line: action, syscall, conditions, reason (for `vmm sandbox show ROLE`).
  std::string ToText() const;

  // Loads the filter into the calling process (all its threads: SECCOMP_FILTER_FLAG_TSYNC).
  // Needs PR_SET_NO_NEW_PRIVS or CAP_SYS_ADMIN (seccomp(2)); libseccomp sets the former.
  Result<void> Apply(const PolicyParams& params) const;
  // Loads the filter into the calling thread only (no TSYNC): the threads it creates later
  // inherit it, the process's other threads do not (the manager's API thread).
  Result<void> ApplyToCallingThread(const PolicyParams& params) const;

 private:
  friend class PolicyBuilder;
  std::string name_;
  std::vector<SyscallRule> rules_;
};

class PolicyBuilder {
 public:
  explicit PolicyBuilder(std::string name);

  // Primitive rules. `reason` says why the role needs the syscall; it is printed.
  PolicyBuilder& Allow(std::string_view syscall, std::string_view reason);
  PolicyBuilder& AllowIf(std::string_view syscall, std::vector<ArgCondition> conditions,
                         std::string_view reason);
  // An allowance that widens the attack surface on purpose: the reason must say why.
  PolicyBuilder& AllowRisky(std::string_view syscall, std::vector<ArgCondition> conditions,
                            std::string_view reason);
  // Fails the syscall with `err` instead of killing (e.g. clone3 -> ENOSYS so glibc falls
  // back to clone, whose flags a filter can read).
  PolicyBuilder& ReturnErrno(std::string_view syscall, int err, std::string_view reason);

  // Named syscall sets (syscall_sets.cc). Each is a handful of lines with reasons.
  PolicyBuilder& AllowExit();            // exit, exit_group
  PolicyBuilder& AllowReadWrite();       // read/write/readv/writev on fds already held
  PolicyBuilder& AllowClose();           // close
  PolicyBuilder& AllowMemoryMapping();   // brk, mmap/mprotect never PROT_EXEC, munmap, ...
  PolicyBuilder& AllowFutex();           // WAIT/WAKE(_BITSET) only, no PI or requeue
  PolicyBuilder& AllowTime();            // clock_gettime, nanosleep, ...
  PolicyBuilder& AllowSignals();         // sigreturn, masks, tgkill to its own threads
  PolicyBuilder& AllowThreads();         // clone with pthread flags only; clone3 -> ENOSYS
  PolicyBuilder& AllowEventfdAndPoll();  // eventfd2, epoll on fds already held (no poll)
  PolicyBuilder& AllowSocketIo();        // sendmsg/recvmsg/... on sockets already held
  PolicyBuilder& AllowFcntl(std::initializer_list<int> commands);
  // ioctl(fd, request) for these KVM requests only. Which fd is not checked: after
  // confinement the process holds only its keep-list fds and cannot open others.
  PolicyBuilder& AllowKvmIoctls(std::span<const unsigned long> requests);
  PolicyBuilder& AllowKvmIoctl(unsigned long request, std::string_view reason);
  PolicyBuilder& AllowGetrandom();
  // What ASan's runtime needs under a filter; roles add it only in sanitizer builds.
  PolicyBuilder& AllowSanitizerRuntime();

  // The policy, or the first error any call above recorded.
  Result<Policy> Build() const;

 private:
  PolicyBuilder& Add(SyscallRule rule);
  void Fail(std::string message);

  Policy policy_;
  std::optional<Error> error_;
};

}  // namespace vmm::sandbox
