#include "vmm/vm/compat/kvm_pvm/kernel_parameters.h"

#include <gtest/gtest.h>

namespace vmm::compat::pvm {
namespace {

constexpr char kAll[] =
    "noxsave nopti clearcpuid=ssse3,popcnt cryptomgr.notests=1 "
    "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs "
    "mitigations=off audit=0 "
    "tsc=reliable "
    "no_timer_check";

using Strings = std::vector<std::string>;

TEST(KvmPvmKernelParameters, TheListIsDesignSectionSixWithoutTheUsersOwn) {
  std::string joined;
  for (const KernelParameter& p : kKernelParameters) {
    joined += (joined.empty() ? "" : " ") + std::string(p.text);
    EXPECT_FALSE(p.why.empty()) << p.text;
    for (const char* users : {"console", "8250.nr_uarts", "panic"}) {
      EXPECT_FALSE(SameKey(ParameterKey(p.text), users)) << p.text;
    }
  }
  EXPECT_EQ(joined, kAll);
}

TEST(KvmPvmKernelParameters, EmptyCommandLineGetsAllOfThem) {
  KernelParameterPlan p = AddKernelParameters("");
  EXPECT_EQ(p.cmdline, kAll);
  EXPECT_EQ(p.added.size(), kKernelParameters.size());
  EXPECT_TRUE(p.left_out.empty());
}

TEST(KvmPvmKernelParameters, AppendedAfterTheUsersWithOneSpace) {
  EXPECT_EQ(AddKernelParameters("console=ttyS0 quiet").cmdline,
            std::string("console=ttyS0 quiet ") + kAll);
  EXPECT_EQ(AddKernelParameters("quiet  \t").cmdline, std::string("quiet ") + kAll);
}

TEST(KvmPvmKernelParameters, UsersValueForTheSameKeyWins) {
  KernelParameterPlan p = AddKernelParameters("mitigations=auto clearcpuid=avx512f");
  EXPECT_EQ(p.left_out, (Strings{"clearcpuid=ssse3,popcnt", "mitigations=off"}));
  EXPECT_EQ(p.cmdline,
            "mitigations=auto clearcpuid=avx512f noxsave nopti cryptomgr.notests=1 "
            "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_"
            "tracefs audit=0 tsc=reliable "
            "no_timer_check");
  EXPECT_EQ(p.added.size() + p.left_out.size(), kKernelParameters.size());
}

TEST(KvmPvmKernelParameters, BareFlagsAreNotDuplicated) {
  KernelParameterPlan p = AddKernelParameters("nopti no_timer_check");
  EXPECT_EQ(p.left_out, (Strings{"nopti", "no_timer_check"}));
  EXPECT_EQ(p.cmdline.find("nopti"), p.cmdline.rfind("nopti"));
  EXPECT_EQ(p.cmdline.find("no_timer_check"), p.cmdline.rfind("no_timer_check"));
}

TEST(KvmPvmKernelParameters, KeyWithOrWithoutValueIsTheSameKey) {
  // "audit" bare and "nopti=1": the kernel would see the same parameter either way.
  KernelParameterPlan p = AddKernelParameters("audit nopti=1");
  EXPECT_EQ(p.left_out, (Strings{"nopti", "audit=0"}));
}

TEST(KvmPvmKernelParameters, DashesAndUnderscoresInAKeyAreAlike) {
  KernelParameterPlan p = AddKernelParameters("no-timer-check initcall-blacklist=foo");
  EXPECT_EQ(
      p.left_out,
      (Strings{
          "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs",
          "no_timer_check"}));
}

TEST(KvmPvmKernelParameters, PrefixOrValueMatchesAreNotTheKey) {
  KernelParameterPlan p =
      AddKernelParameters("noxsaveopt tsc=unstable_x audit_backlog_limit=64 x=nopti");
  EXPECT_EQ(p.left_out, (Strings{"tsc=reliable"}));
  EXPECT_NE(p.cmdline.find(" noxsave "), std::string::npos);
  EXPECT_NE(p.cmdline.find(" audit=0 "), std::string::npos);
}

TEST(KvmPvmKernelParameters, ModuleParameterKeysKeepTheirModule) {
  // cryptomgr.notests is not notests, nor another module's notests.
  KernelParameterPlan p = AddKernelParameters("notests=1 tcrypt.notests=1");
  EXPECT_TRUE(p.left_out.empty());
  EXPECT_TRUE(AddKernelParameters("cryptomgr.notests=0").left_out ==
              Strings{"cryptomgr.notests=1"});
}

TEST(KvmPvmKernelParameters, OursGoBeforeInitsArguments) {
  KernelParameterPlan p = AddKernelParameters("root=/dev/vda -- nopti single");
  EXPECT_TRUE(p.left_out.empty()) << "words after -- are init's, not the kernel's";
  EXPECT_EQ(p.cmdline, std::string("root=/dev/vda ") + kAll + " -- nopti single");
  EXPECT_EQ(AddKernelParameters("-- x").cmdline, std::string(kAll) + " -- x");
}

TEST(KvmPvmKernelParameters, UserSettingEveryKeyAddsNothing) {
  std::string all_users =
      "noxsave nopti clearcpuid=sse4_2 cryptomgr.notests=0 "
      "initcall_blacklist=x mitigations=auto audit=1 tsc=unstable "
      "no_timer_check";
  KernelParameterPlan p = AddKernelParameters(all_users);
  EXPECT_TRUE(p.added.empty());
  EXPECT_EQ(p.left_out.size(), kKernelParameters.size());
  EXPECT_EQ(p.cmdline, all_users);
}

TEST(KvmPvmKernelParameters, WordsSplitAtAnyWhitespace) {
  KernelParameterPlan p = AddKernelParameters("quiet\tmitigations=auto\nnopti");
  EXPECT_EQ(p.left_out, (Strings{"nopti", "mitigations=off"}));
}

TEST(KvmPvmKernelParameters, ParameterKeyIsTheTextBeforeTheFirstEquals) {
  EXPECT_EQ(ParameterKey("clearcpuid=ssse3,popcnt"), "clearcpuid");
  EXPECT_EQ(ParameterKey("nopti"), "nopti");
  EXPECT_EQ(ParameterKey("a=b=c"), "a");
  EXPECT_EQ(ParameterKey("=x"), "");
  EXPECT_TRUE(SameKey("no_timer_check", "no-timer-check"));
  EXPECT_FALSE(SameKey("nopti", "noptI"));
  EXPECT_FALSE(SameKey("nopti", "nopt"));
}

}  // namespace
}  // namespace vmm::compat::pvm
