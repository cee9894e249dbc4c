// The kernel parameters the kvm_pvm compatibility module adds to the guest's command line
// (ARCHITECTURE.md §5; measured on a kvm_pvm host with another launcher: with them a stock
// Debian kernel reached /init, without the crypto self-test and ftrace entries it had not
// after 380 s). Pure: no KVM, no I/O.
//
//   KernelParameterPlan p = AddKernelParameters("console=ttyS0 mitigations=auto");
//   p.cmdline   == "console=ttyS0 mitigations=auto noxsave nopti ... no_timer_check"
//   p.left_out  == {"mitigations=off"}     // the user's own value for that key wins
//
// Not added, because they are the user's choice rather than something kvm_pvm forces:
// `console=` (where the kernel's messages go), `8250.nr_uarts=` (fewer legacy ports probed
// is only a saving) and `panic=` (what a panicking guest does).
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace vmm::compat::pvm {

struct KernelParameter {
  std::string_view text;  // "clearcpuid=ssse3,popcnt"
  std::string_view why;
};

// In the order they are appended. Each costs the guest something it may want back; a user
// who does passes the same key with their own value in --cmdline.
inline constexpr std::array<KernelParameter, 9> kKernelParameters = {{
    {"noxsave",
     "the xsave family (xsave, xrstor, xsaveopt) faults kvm_pvm's emulator in ring 0 and the "
     "module does not complete it (it would need the vCPU's XSAVE area); without XSAVE the "
     "kernel saves FPU state with fxsave"},
    {"nopti",
     "one page table for user and kernel mode: fewer CR3 writes in ring 0, and what "
     "kvm_pvm's SYSCALL path was measured with"},
    {"clearcpuid=ssse3,popcnt",
     "kvm_pvm shows the guest the host's SSSE3 and POPCNT whatever CPUID we set, and its "
     "emulator gives up on them in ring 0: an exit per instruction. SMAP stays: its clac, "
     "the first instruction of every exception entry, also costs an exit, and that exit is "
     "the module's SYSCALL trigger where the hardware breakpoint never fires"},
    {"cryptomgr.notests=1",
     "the crypto self-tests run minutes of ring-0 code at kvm_pvm's ~0.75 us per "
     "instruction"},
    {"initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs",
     "ftrace's boot-time scan of every function kept the Debian kernel in a soft lockup "
     "(ftrace_check_work_func) for minutes; trace_eval_init's update of every trace event's "
     "enum names (trace_event_update_all, a strncmp per event and map) held event_mutex for "
     "over 4 minutes on a kvm_pvm host while init waited: trace output shows raw enum values "
     "instead; and without trace_eval_init's workqueue, tracer_init_tracefs runs in init "
     "itself and creates every trace event's tracefs files (thousands of inodes): measured "
     "on a kvm_pvm host, boot stopped there for over 10 minutes of timer ticks, and passed "
     "it in seconds without it (the guest has no tracefs)"},
    {"mitigations=off",
     "speculation mitigations add ring-0 work to every kernel entry and exit; this gives up "
     "the guest's own defences between its processes, not the host's isolation of the VM "
     "(pass mitigations=auto to keep them)"},
    {"audit=0", "no audit records formatted in ring 0 during boot"},
    {"tsc=reliable",
     "the clocksource watchdog, delayed by the slow ring 0, would judge the TSC unstable and "
     "switch to a clock that exits on every read"},
    {"no_timer_check",
     "skips the IO-APIC timer check, which busy-waits for ticks and can misjudge a slow "
     "guest's timer as broken"},
}};

// "clearcpuid" for "clearcpuid=ssse3", "nopti" for "nopti". Linux treats '-' and '_' in a
// parameter's name alike (kernel/params.c parameq), so compare keys with SameKey.
std::string_view ParameterKey(std::string_view parameter);
bool SameKey(std::string_view a, std::string_view b);

struct KernelParameterPlan {
  std::string cmdline;                // the user's command line with `added` in it
  std::vector<std::string> added;     // ours, in order
  std::vector<std::string> left_out;  // ours whose key the user's command line sets
};

// Adds each of kKernelParameters whose key the user's command line does not already set.
// Words are split at whitespace (no quoting). Words after a lone "--" are init's arguments,
// not the kernel's: they set nothing, and ours go before the "--".
KernelParameterPlan AddKernelParameters(std::string_view user_cmdline);

}  // namespace vmm::compat::pvm
