// `vmm-vcpu`: the VM process. Started by the manager (`vmm run`) with SpawnRole: pid 1 of a
// new pid namespace, holding only the fds the manager passed. It builds the VM (KVM VM and
// vCPUs, guest RAM, platform devices, the virtio-mmio front-ends of the device processes),
// then confines itself with the vcpu role (sandbox/roles.cc: no file access, no /dev/kvm,
// only the KVM ioctls that run a VM, not those that shape it) before the first guest
// instruction runs, and runs the VM until it stops.
//
//   vmm-vcpu --spec JSON
//
// JSON is a VmSpec (vmm/contract/vm_spec.h): versioned, parsed strictly and checked before
// anything else happens. Files named in it are the manager's fds, as /proc/self/fd/N paths,
// read before confinement; its fd numbers (/dev/kvm, the device sessions, the vTPM channel)
// are fds this process inherited. Exit status as `vmm run`'s: 0 powered off, 1 failed,
// 2 bad input (a spec refused included), 128+N stopped by signal N.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>
#include "base/cli.h"

#include "base/version.h"
#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "vmm/contract/vm_spec.h"
#include "vmm/vm/boot/elf_symbols.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/machine/boot_plan.h"
#include "vmm/vm/machine/machine.h"

namespace vmm {
namespace {

constexpr int kExitVmFailed = 1;
constexpr int kExitUsage = 2;

int Fail(const Error& e) {
  std::fprintf(stderr, "vmm: error: %s\n", e.ToString().c_str());
  return e.kind() == ErrorKind::kInvalidArgument ? kExitUsage : kExitVmFailed;
}

std::vector<int> OpenFds() {
  std::vector<int> fds;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') fds.push_back(std::atoi(e->d_name));
  }
  int own = dirfd(d);
  closedir(d);
  std::erase(fds, own);
  return fds;
}

void NoOp(int) {}

// Reports how the VM ended on stderr and returns the process's exit status.
int ExitStatus(const RunOutcome& out) {
  if (!out.profile.empty()) std::fprintf(stderr, "%s", out.profile.c_str());
  if (!out.exit_stats.empty()) std::fprintf(stderr, "%s", out.exit_stats.c_str());
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
  CLI::App app{"vmm-vcpu: the VM process of vmm (started by `vmm run`, not by hand)"};
  app.set_version_flag("--version", std::string("vmm-vcpu ") + VMM_VERSION);
  std::string spec_json;
  app.add_option("--spec", spec_json,
                 "The VM spec (vmm/contract/vm_spec.h, version " + std::to_string(kVmSpecVersion) +
                     "): what to boot and the fds to use")
      ->required();
  if (std::optional<int> done = ParseCommandLine(app, argc, argv, "vmm-vcpu")) return *done;
  // As pid 1 of its namespace this process gets only the signals it has handlers for;
  // the manager forwards SIGINT and SIGTERM and sends SIGPWR for the ACPI power button, which
  // Machine::Run takes through a signalfd.
  struct sigaction sa {};
  sa.sa_handler = NoOp;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGPWR, &sa, nullptr);

  // The spec is checked whole before any file or fd it names is used.
  auto parsed = ParseVmSpec(spec_json);
  if (!parsed) return Fail(parsed.error());
  const VmSpec spec = std::move(parsed).value();
  const bool profile = spec.diagnostics.profile;
  const std::string& profile_symbols = spec.diagnostics.profile_symbols;
  const int kvm_fd = spec.kvm_fd;
  auto plan = PlanBoot(spec, kvm::DetectFlavor());
  if (!plan) return Fail(plan.error());
  std::vector<DeviceLink> links;
  for (const DeviceSpec& d : spec.devices) {
    DeviceLink link;
    link.name = d.name;
    link.device_id = d.virtio_id;
    link.config_size = d.config_size;
    link.sock.reset(d.fd);
    links.push_back(std::move(link));
  }
  const bool plan_compat = plan->kvm_compat;
  MachineOptions options;
  options.profile = profile;
  options.exit_stats = spec.diagnostics.exit_stats || profile;
  if (profile || plan->kvm_compat || !profile_symbols.empty()) {
    auto bytes = profile_symbols.empty()
                     ? Result<std::vector<uint8_t>>(plan->kernel_bytes)
                     : ReadFileLimited(profile_symbols, 256ull << 20, "--profile-symbols");
    if (!bytes) return Fail(bytes.error());
    auto syms = boot::ReadSymbols(*bytes);
    if (syms) {
      options.symbols = std::make_shared<boot::SymbolTable>(std::move(syms).value());
    } else if (!profile_symbols.empty()) {
      return Fail(syms.error());
    }
  }
  std::unique_ptr<Machine> machine;
  {
    // The manager's fd itself, not reopened: a manager that dropped root need not be able to.
    auto kvm = kvm::Kvm::FromFd(UniqueFd(fcntl(kvm_fd, F_DUPFD_CLOEXEC, 0)));
    if (!kvm) return Fail(kvm.error());
    auto m = Machine::Create(spec, std::move(plan).value(), *kvm, options, std::move(links),
                             UniqueFd(spec.tpm_fd));
    if (!m) return Fail(m.error());
    machine = std::move(m).value();
  }  // /dev/kvm closed: the VM's shape is fixed from here on
  close(kvm_fd);

  // Keep what the machine holds (the VM and vCPU fds, eventfds, sessions, serial, stdio);
  // the kernel, initramfs, event log and symbol files were read, and the serial file was reopened
  // by SerialOutput: Confine closes the manager's copies.
  std::set<int> drop;
  for (const std::string& path :
       {spec.kernel, spec.initramfs, spec.event_log, spec.serial_path, profile_symbols}) {
    if (path.rfind("/proc/self/fd/", 0) == 0) drop.insert(std::atoi(path.c_str() + 14));
  }
  sandbox::ConfineOptions o;
  o.role = std::string(sandbox::VcpuRole(plan_compat));
  for (int fd : OpenFds()) {
    if (!drop.count(fd)) o.keep_fds.push_back(fd);
  }
  // Our stderr is a pipe to the manager, which puts "vmm: vcpu: " before each line.
  o.log = [](const std::string& note) { std::fprintf(stderr, "vmm-vcpu: %s\n", note.c_str()); };
  if (auto c = sandbox::Confine(o); !c) return Fail(c.error().Wrap("confinement"));

  // Under the role's filter from here on: end through ExitConfined, never exit().
  sandbox::ExitConfined(ExitStatus(machine->Run()));
}

}  // namespace
}  // namespace vmm

int main(int argc, char** argv) { return vmm::Main(argc, argv); }
