// `vmm`: the command-line front end. Exit codes: 0 the guest powered off (or asked for a
// reset, which stops the VM); 1 the VM failed (triple fault, unhandled exit, KVM or host
// error); 2 bad input (flags, config file, kernel, sizes); 128+N stopped by signal N.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/boot/elf_symbols.h"
#include "vmm/common/version.h"
#include "vmm/kvm/kvm.h"
#include "vmm/machine/boot_plan.h"
#include "vmm/machine/machine.h"
#include "vmm/manager/config.h"
#include "vmm/manager/device_processes.h"
#include "sandbox/roles.h"

namespace vmm {
namespace {

constexpr int kExitVmFailed = 1;
constexpr int kExitUsage = 2;
constexpr uint64_t kMaxConfigBytes = 1 << 20;
constexpr uint64_t kMaxSymbolFileBytes = 256ull << 20;

int Fail(const Error& e) {
  std::fprintf(stderr, "vmm: error: %s\n", e.ToString().c_str());
  return e.kind() == ErrorKind::kInvalidArgument ? kExitUsage : kExitVmFailed;
}

struct RunFlags {
  std::string config_path;
  // Flags given on the command line, by name, in order; they override the config file.
  std::vector<std::pair<std::string, std::string>> settings;
  bool dry_run = false;
  bool profile = false;
  std::string profile_symbols;
};

Result<boot::SymbolTable> LoadProfileSymbols(const std::string& path,
                                             const std::vector<uint8_t>& kernel) {
  if (path.empty()) return boot::ReadSymbols(kernel);
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                   ReadFileLimited(path, kMaxSymbolFileBytes, "symbol file"));
  return boot::ReadSymbols(bytes);
}

Result<VmConfig> ResolveConfig(const RunFlags& flags) {
  VmConfig cfg;
  if (!flags.config_path.empty()) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> text,
                     ReadFileLimited(flags.config_path, kMaxConfigBytes, "config file"));
    auto parsed = ParseConfigJson(std::string_view(reinterpret_cast<char*>(text.data()), text.size()));
    if (!parsed) return parsed.error().Wrap("'" + flags.config_path + "'");
    cfg = std::move(parsed).value();
  }
  for (const auto& [name, value] : flags.settings) RETURN_IF_ERROR(ApplyFlag(cfg, name, value));
  RETURN_IF_ERROR(ValidateConfig(cfg, HostLimits::Probe()));
  return cfg;
}

int RunMachine(const RunFlags& flags, const VmConfig& cfg, BootPlan plan, const kvm::Kvm& kvm,
               std::vector<DeviceProcess>& devices);

int Run(const RunFlags& flags) {
  auto cfg = ResolveConfig(flags);
  if (!cfg) return Fail(cfg.error());
  auto plan = PlanBoot(*cfg, kvm::DetectFlavor());
  if (!plan) return Fail(plan.error());
  if (auto disks = CheckDiskImages(*cfg); !disks) return Fail(disks.error());
  if (flags.dry_run) {
    std::printf("configuration:\n%s\n%s", ConfigToJson(*cfg).c_str(),
                DescribeBootPlan(*plan).c_str());
    for (size_t i = 0; i < cfg->disks.size(); ++i) {
      std::printf("virtio-blk%zu: %s%s, in its own process (vmm-device blk), mmio 0x%llx gsi %u\n",
                  i, cfg->disks[i].path.c_str(), cfg->disks[i].readonly ? " (read-only)" : "",
                  static_cast<unsigned long long>(x86::kVirtioMmioBase + i * x86::kVirtioMmioStride),
                  x86::kVirtioMmioFirstGsi + static_cast<unsigned>(i));
    }
    if (cfg->rng) {
      size_t i = cfg->disks.size();
      std::printf("virtio-rng: in its own process (vmm-device rng), mmio 0x%llx gsi %u\n",
                  static_cast<unsigned long long>(x86::kVirtioMmioBase + i * x86::kVirtioMmioStride),
                  x86::kVirtioMmioFirstGsi + static_cast<unsigned>(i));
    }
    return 0;
  }
  auto kvm = kvm::Kvm::Open();
  if (!kvm) return Fail(kvm.error());
  // Device processes before any thread exists in this process (SpawnRole needs that).
  auto devices = StartDeviceProcesses(*cfg);
  if (!devices) return Fail(devices.error());
  int code = RunMachine(flags, *cfg, std::move(plan).value(), *kvm, *devices);
  std::string problems = ReapDeviceProcesses(*devices);
  if (!problems.empty()) {
    std::fprintf(stderr, "vmm: %s", problems.c_str());
    if (code == 0) code = kExitVmFailed;
  }
  return code;
}

int RunMachine(const RunFlags& flags, const VmConfig& cfg, BootPlan plan, const kvm::Kvm& kvm,
               std::vector<DeviceProcess>& devices) {
  MachineOptions options;
  options.profile = flags.profile;
  // Symbols also name the instruction the kvm_pvm compatibility module stops on.
  if (flags.profile || plan.kvm_compat || !flags.profile_symbols.empty()) {
    // Names for the profile: the given file, else the kernel itself when it has symbols.
    auto syms = LoadProfileSymbols(flags.profile_symbols, plan.kernel_bytes);
    if (syms) {
      options.symbols = std::make_shared<boot::SymbolTable>(std::move(syms).value());
    } else if (!flags.profile_symbols.empty()) {
      return Fail(syms.error());
    }
  }
  std::vector<DeviceLink> links;
  for (DeviceProcess& d : devices) {
    links.push_back({d.name, d.device_id, d.config_size, std::move(d.sock)});
  }
  auto machine = Machine::Create(cfg, std::move(plan), kvm, options, std::move(links));
  if (!machine) return Fail(machine.error());
  for (DeviceProcess& d : devices) {
    (*machine)->Watch(d.pidfd.get(), [&d] { return DescribeDeviceExit(d); });
  }
  RunOutcome out = (*machine)->Run();
  if (!out.profile.empty()) std::fprintf(stderr, "%s", out.profile.c_str());
  if (!out.compat_summary.empty()) std::fprintf(stderr, "vmm: %s\n", out.compat_summary.c_str());
  switch (out.reason) {
    case StopReason::kPowerOff:
      return 0;
    case StopReason::kReset:
      std::fprintf(stderr, "vmm: %s\n", out.message.c_str());
      return 0;
    case StopReason::kSignal:
      std::fprintf(stderr, "vmm: %s\n", out.message.c_str());
      return 128 + out.signal;
    case StopReason::kError:
    case StopReason::kNone:
      break;
  }
  std::fprintf(stderr, "vmm: error: %s\n", out.message.c_str());
  return kExitVmFailed;
}

int Main(int argc, char** argv) {
  CLI::App app{"vmm: a privilege-separated KVM virtual machine monitor"};
  app.set_version_flag("--version", std::string("vmm ") + VMM_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 guest powered off; 1 the VM failed; 2 bad input; 128+N stopped by signal N.");

  RunFlags flags;
  CLI::App* run = app.add_subcommand("run", "Boot a VM and run it until it powers off");
  run->add_option("--config", flags.config_path,
                  "JSON file with the settings below as keys (kernel, initramfs, cmdline, cpus, "
                  "memory, serial, kvm-compat, disk, rng); flags override it")
      ->type_name("FILE");
  auto setting = [&](const char* name, const char* help, const char* type) {
    run->add_option_function<std::string>(
           std::string("--") + name,
           [&flags, name](const std::string& v) { flags.settings.emplace_back(name, v); }, help)
        ->type_name(type);
  };
  setting("kernel", "Kernel to boot: a PVH ELF (vmlinux, the test guest) or a bzImage", "PATH");
  setting("initramfs", "Initial RAM disk handed to the kernel", "PATH");
  setting("cmdline", "Kernel command line", "TEXT");
  setting("cpus", "Number of vCPUs: N or boot=N (default 1)", "boot=N");
  setting("memory", "Guest RAM: size=SIZE or SIZE, with K/M/G/T suffix (default 512M)", "size=SIZE");
  setting("serial", "COM1 output: tty (stdout, default), file=PATH, null, off", "MODE");
  run->add_option_function<std::vector<std::string>>(
         "--disk",
         [&flags](const std::vector<std::string>& v) {
           for (const std::string& d : v) flags.settings.emplace_back("disk", d);
         },
         "virtio-blk disk served by its own confined process: path=IMG[,readonly=on] "
         "(repeatable, raw images)")
      ->type_name("path=IMG");
  run->add_flag_callback(
      "--rng", [&flags] { flags.settings.emplace_back("rng", "on"); },
      "virtio-rng device served by its own confined process (from the host's getrandom)");
  setting("kvm-compat",
          "kvm_pvm compatibility module: auto (on when the host's KVM is kvm_pvm, default), "
          "on, off. When on, it completes the instructions kvm_pvm's emulator gives up on and "
          "adds kernel parameters (see --dry-run)",
          "MODE");
  run->add_flag("--profile", flags.profile,
                "Sample the guest RIP every millisecond and print the busiest kernel symbols "
                "at exit (costs one VM exit per sample)");
  run->add_option("--profile-symbols", flags.profile_symbols,
                  "Symbols for --profile: a vmlinux with a symbol table or a System.map "
                  "(default: the kernel itself, if it has symbols)")
      ->type_name("PATH");
  run->add_flag("--dry-run", flags.dry_run,
                "Check the configuration and the kernel, print the boot plan, do not start the VM");

  std::string role;
  CLI::App* sandbox = app.add_subcommand("sandbox", "Inspect the confinement of the VMM's process roles");
  sandbox->require_subcommand(1);
  CLI::App* show = sandbox->add_subcommand(
      "show", "Print a role's seccomp filter, one syscall a line with the reason beside it");
  std::string roles;
  for (const std::string& r : sandbox::RoleNames()) roles += (roles.empty() ? "" : ", ") + r;
  show->add_option("ROLE", role, "One of: " + roles)->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "vmm: error: %s\nRun 'vmm --help' or 'vmm run --help' for usage.\n",
                 e.what());
    return kExitUsage;
  }
  if (run->parsed()) return Run(flags);
  if (show->parsed()) {
    auto policy = sandbox::PolicyForRole(role);
    if (!policy) return Fail(policy.error());
    std::printf("%s", policy->ToText().c_str());
    return 0;
  }
  return kExitUsage;
}

}  // namespace
}  // namespace vmm

int main(int argc, char** argv) { return vmm::Main(argc, argv); }
