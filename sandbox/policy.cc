#include "sandbox/policy.h"

#include <seccomp.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <set>

#include "base/hex.h"

namespace vmm::sandbox {
namespace {

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using FilterCtx = std::unique_ptr<void, CtxDeleter>;

std::string DescribeCondition(const ArgCondition& c) {
  std::string s = "arg" + std::to_string(c.arg);
  if (c.op == CmpOp::kMaskedEq) s += " & " + Hex(c.mask);
  s += " == ";
  if (!c.param.empty()) return s + "$" + c.param;
  s += Hex(c.value);
  if (!c.label.empty()) s += " (" + c.label + ")";
  return s;
}

bool SameCondition(const ArgCondition& a, const ArgCondition& b) {
  return a.arg == b.arg && a.op == b.op && a.mask == b.mask && a.value == b.value &&
         a.param == b.param;
}

bool SameConditions(const SyscallRule& a, const SyscallRule& b) {
  return std::equal(a.conditions.begin(), a.conditions.end(), b.conditions.begin(),
                    b.conditions.end(), SameCondition);
}

Result<FilterCtx> Compile(const Policy& policy, const PolicyParams& params, bool all_threads) {
  FilterCtx ctx(seccomp_init(SCMP_ACT_KILL_PROCESS));
  if (!ctx) return Error(ErrorKind::kSystem, "seccomp_init failed");
  // A 32-bit (int 0x80) or x32 syscall from this x86_64 process has other numbers: kill it
  // rather than match it against x86_64 rules (seccomp(2), "Caveats").
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  // Threads that exist already get the filter too (SECCOMP_FILTER_FLAG_TSYNC).
  if (rc == 0 && all_threads) rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1);
  if (rc != 0) return Error(ErrorKind::kSystem, "seccomp_attr_set", -rc);

  for (const SyscallRule& rule : policy.rules()) {
    std::vector<scmp_arg_cmp> cmps;
    for (const ArgCondition& c : rule.conditions) {
      uint64_t value = c.value;
      if (!c.param.empty()) {
        auto it = params.find(c.param);
        if (it == params.end()) {
          return InvalidArgument("policy " + policy.name() + ": parameter $" + c.param +
                                 " (used by " + rule.name + ") was not given");
        }
        value = it->second;
      }
      if (c.op == CmpOp::kEq) {
        cmps.push_back(scmp_arg_cmp{c.arg, SCMP_CMP_EQ, value, 0});
      } else {
        cmps.push_back(scmp_arg_cmp{c.arg, SCMP_CMP_MASKED_EQ, c.mask, value});
      }
    }
    uint32_t action =
        rule.action == RuleAction::kAllow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(rule.errno_value);
    rc = seccomp_rule_add_exact_array(ctx.get(), action, rule.nr,
                                      static_cast<unsigned>(cmps.size()), cmps.data());
    if (rc != 0) {
      return Error(ErrorKind::kInternal,
                   "policy " + policy.name() + ": libseccomp refused the rule for " + rule.name,
                   -rc);
    }
  }
  return ctx;
}

}  // namespace

ArgCondition ArgEq(unsigned arg, uint64_t value, std::string label) {
  return ArgCondition{arg, CmpOp::kEq, ~0ULL, value, "", std::move(label)};
}
ArgCondition ArgMaskedEq(unsigned arg, uint64_t mask, uint64_t value, std::string label) {
  return ArgCondition{arg, CmpOp::kMaskedEq, mask, value, "", std::move(label)};
}
ArgCondition ArgEqParam(unsigned arg, std::string param) {
  return ArgCondition{arg, CmpOp::kEq, ~0ULL, 0, std::move(param), ""};
}

bool Policy::Mentions(std::string_view syscall) const {
  return std::any_of(rules_.begin(), rules_.end(), [&](const SyscallRule& r) {
    return r.name == syscall && r.action == RuleAction::kAllow;
  });
}

std::vector<std::string> Policy::RequiredParams() const {
  std::set<std::string> names;
  for (const SyscallRule& r : rules_) {
    for (const ArgCondition& c : r.conditions) {
      if (!c.param.empty() && c.param != "self_pid") names.insert(c.param);
    }
  }
  return {names.begin(), names.end()};
}

std::string Policy::ToText() const {
  std::string out = "# policy " + name_ + ": " + std::to_string(rules_.size()) +
                    " rules; any other syscall: KILL_PROCESS (SIGSYS)\n";
  for (const SyscallRule& r : rules_) {
    std::string what;
    if (r.action == RuleAction::kErrno) {
      const char* e = strerrorname_np(r.errno_value);
      what = std::string("-> ") + (e ? e : std::to_string(r.errno_value).c_str());
    } else if (r.conditions.empty()) {
      what = "always";
    } else {
      for (const ArgCondition& c : r.conditions) {
        what += (what.empty() ? "if " : " && ") + DescribeCondition(c);
      }
    }
    char head[128];
    std::snprintf(head, sizeof(head), "%-6s %-17s ",
                  r.action == RuleAction::kAllow ? "allow" : "errno", r.name.c_str());
    std::string line = head + what;
    if (line.size() < 72) line.resize(72, ' ');
    out += line + " # " + (r.risky ? "RISKY: " : "") + r.reason + "\n";
  }
  return out;
}

namespace {

Result<void> Load(const Policy& policy, const PolicyParams& params, bool all_threads) {
  PolicyParams all = params;
  all["self_pid"] = static_cast<uint64_t>(getpid());
  ASSIGN_OR_RETURN(FilterCtx ctx, Compile(policy, all, all_threads));
  int rc = seccomp_load(ctx.get());
  if (rc != 0) return Error(ErrorKind::kSystem, "seccomp_load (policy " + policy.name() + ")", -rc);
  return Ok();
}

}  // namespace

Result<void> Policy::Apply(const PolicyParams& params) const { return Load(*this, params, true); }

Result<void> Policy::ApplyToCallingThread(const PolicyParams& params) const {
  return Load(*this, params, false);
}

PolicyBuilder::PolicyBuilder(std::string name) { policy_.name_ = std::move(name); }

void PolicyBuilder::Fail(std::string message) {
  if (!error_) error_ = InvalidArgument("policy " + policy_.name_ + ": " + std::move(message));
}

PolicyBuilder& PolicyBuilder::Add(SyscallRule rule) {
  int nr = seccomp_syscall_resolve_name(rule.name.c_str());
  if (nr == __NR_SCMP_ERROR || nr < 0) {
    Fail("'" + rule.name + "' is not an x86_64 syscall");
    return *this;
  }
  rule.nr = nr;
  std::set<unsigned> args;
  for (const ArgCondition& c : rule.conditions) {
    if (c.arg > 5) Fail(rule.name + ": argument index " + std::to_string(c.arg) + " > 5");
    // libseccomp 2.5 cannot AND two comparisons of one argument in a rule.
    if (!args.insert(c.arg).second)
      Fail(rule.name + ": two conditions on arg" + std::to_string(c.arg));
  }
  for (const SyscallRule& old : policy_.rules_) {
    if (old.name != rule.name) continue;
    if (old.action != rule.action) {
      Fail(rule.name + " is both allowed and failed with an errno");
    } else if (old.conditions.empty() != rule.conditions.empty()) {
      // An unconditional allow would make the conditional one meaningless.
      Fail(rule.name + " is allowed both always and only with conditions");
    } else if (SameConditions(old, rule)) {
      return *this;  // named sets may overlap; the first reason stays
    }
  }
  policy_.rules_.push_back(std::move(rule));
  return *this;
}

PolicyBuilder& PolicyBuilder::Allow(std::string_view syscall, std::string_view reason) {
  return AllowIf(syscall, {}, reason);
}

PolicyBuilder& PolicyBuilder::AllowIf(std::string_view syscall,
                                      std::vector<ArgCondition> conditions,
                                      std::string_view reason) {
  return Add(SyscallRule{.name = std::string(syscall),
                         .conditions = std::move(conditions),
                         .reason = std::string(reason)});
}

PolicyBuilder& PolicyBuilder::AllowRisky(std::string_view syscall,
                                         std::vector<ArgCondition> conditions,
                                         std::string_view reason) {
  return Add(SyscallRule{.name = std::string(syscall),
                         .conditions = std::move(conditions),
                         .reason = std::string(reason),
                         .risky = true});
}

PolicyBuilder& PolicyBuilder::ReturnErrno(std::string_view syscall, int err,
                                          std::string_view reason) {
  SyscallRule r;
  r.name = syscall;
  r.action = RuleAction::kErrno;
  r.errno_value = err;
  r.reason = reason;
  return Add(std::move(r));
}

Result<Policy> PolicyBuilder::Build() const {
  if (error_) return *error_;
  // Compile once with placeholder parameters so that libseccomp's own objections surface
  // here, in the builder's caller, and not later in a half-confined child.
  PolicyParams placeholders{{"self_pid", 1}};
  for (const std::string& p : policy_.RequiredParams()) placeholders[p] = 0;
  auto ctx = Compile(policy_, placeholders, true);
  if (!ctx) return ctx.error();
  return policy_;
}

}  // namespace vmm::sandbox
