// `vmm`: the command-line front end. Exit codes: 0 the guest powered off (or asked for a
// reset, which stops the VM); 1 the VM failed (triple fault, unhandled exit, KVM or host
// error); 2 bad input (flags, config file, kernel, sizes); 128+N stopped by signal N.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <span>
#include <string>

#include "attestation/appraisal.h"
#include "attestation/evidence.h"
#include "base/hex.h"
#include "base/version.h"
#include "sandbox/child_log.h"
#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "vmm/contract/layout.h"
#include "vmm/manager/api_server.h"
#include "vmm/manager/attest.h"
#include "vmm/manager/child_process.h"
#include "vmm/manager/config.h"
#include "vmm/manager/device_processes.h"
#include "vmm/manager/exit_status.h"
#include "vmm/manager/launch_check.h"
#include "vmm/manager/measured_boot.h"
#include "vmm/manager/policy_cli.h"
#include "vmm/manager/vtpm_cli.h"
#include "vmm/manager/vtpm_commands.h"
#include "vmm/manager/vtpm_process.h"
#include "vmm/vm/boot/elf_symbols.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/machine/boot_plan.h"
#include "vmm/vm/tpm_crb/crb_device.h"
#include "vtpm/provision/host_ca.h"
#include "vtpm/tcti/esys_context.h"

namespace vmm {
namespace {

constexpr uint64_t kMaxConfigBytes = 1 << 20;

struct RunFlags {
  std::string config_path;
  // Flags given on the command line, by name, in order; they override the config file.
  std::vector<std::pair<std::string, std::string>> settings;
  bool dry_run = false;
  bool profile = false;
  bool exit_stats = false;
  std::string profile_symbols;
  std::string event_log_out;  // run: a copy of the event log the guest gets
  std::string api_socket;
  // --policy (empty: the host default if it exists), and the admitting policy's SHA-256 that
  // Run() or Measure() found, measured into PCR 1 (launch_check.h).
  std::string launch_policy;
  std::string launch_policy_digest;
};

Result<VmConfig> ResolveConfig(const RunFlags& flags) {
  VmConfig cfg;
  if (!flags.config_path.empty()) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> text,
                     ReadFileLimited(flags.config_path, kMaxConfigBytes, "--config"));
    auto parsed =
        ParseConfigJson(std::string_view(reinterpret_cast<char*>(text.data()), text.size()));
    if (!parsed) return parsed.error().Wrap("'" + flags.config_path + "'");
    cfg = std::move(parsed).value();
  }
  for (const auto& [name, value] : flags.settings) RETURN_IF_ERROR(ApplyFlag(cfg, name, value));
  RETURN_IF_ERROR(ValidateConfig(cfg, HostLimits::Probe()));
  return cfg;
}

int RunProcesses(const RunFlags& flags, const VmConfig& cfg, const BootPlan& plan);

// --profile without --profile-symbols: the kernel's own symbol table when it has one, else
// a System.map beside the kernel file (boot::SystemMapCandidates). Sets flags.profile_symbols
// to the file it picks and returns what it did, for the user.
std::string ChooseProfileSymbols(RunFlags& flags, const VmConfig& cfg, const BootPlan& plan) {
  if (!flags.profile_symbols.empty()) return "symbols from " + flags.profile_symbols;
  auto own = boot::ReadElfSymbols(plan.kernel_bytes);
  if (own && own->size() > 0) return "symbols from the kernel's own symbol table";
  for (const std::string& path : boot::SystemMapCandidates(cfg.kernel)) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      flags.profile_symbols = path;
      return "symbols from " + path + " (found beside the kernel)";
    }
  }
  return "the kernel has no symbol table and no System.map is beside it: addresses only "
         "(name one with --profile-symbols)";
}

int Run(const RunFlags& given) {
  auto cfg = ResolveConfig(given);
  if (!cfg) return Fail(cfg.error());
  auto plan = PlanBoot(SpecFromConfig(*cfg), kvm::DetectFlavor());
  if (!plan) return Fail(plan.error());
  if (auto disks = CheckDiskImages(*cfg); !disks) return Fail(disks.error());
  if (auto tpm = CheckTpmPaths(cfg->tpm, "--tpm"); !tpm) return Fail(tpm.error());
  if (!given.event_log_out.empty() && !cfg->tpm.enabled()) {
    return Fail(InvalidArgument(
        "--event-log-out: the VM has no vTPM (--tpm off), so there is no event log"));
  }
  RunFlags flags = given;
  // The launch policy decides before anything is created or printed (ARCHITECTURE.md §9).
  auto launch = DecideLaunch(given.launch_policy, *cfg, *plan);
  if (!launch) return Fail(launch.error());
  if (!launch->refusals.empty()) return ReportRefusals(*launch);
  flags.launch_policy_digest = launch->policy_digest;
  std::string symbols_note = flags.profile ? ChooseProfileSymbols(flags, *cfg, *plan) : "";
  if (flags.dry_run) {
    std::printf("configuration:\n%s\n%s", ConfigToJson(*cfg).c_str(),
                DescribeBootPlan(*plan).c_str());
    if (flags.profile) std::printf("profile: %s\n", symbols_note.c_str());
    for (const PlannedDevice& dev : PlanDevices(*cfg)) {
      std::printf("%s\n", DescribePlannedDevice(dev).c_str());
    }
    if (cfg->tpm.enabled()) {
      std::printf(
          "tpm: TPM 2.0 on CRB at 0x%llx (buffer 0x%llx), in its own process (vmm-vtpm), "
          "%s\n",
          static_cast<unsigned long long>(::vtpm::kCrbBaseGpa),
          static_cast<unsigned long long>(::vtpm::kCrbSuggestedBufferGpa),
          cfg->tpm.mode == TpmConfig::Mode::kEphemeral
              ? "ephemeral (state in memory, lost when the VM stops)"
              : ("state sealed in " + cfg->tpm.state_dir + " with the key " + cfg->tpm.key_file)
                    .c_str());
    }
    return 0;
  }
  if (flags.profile) std::fprintf(stderr, "vmm: --profile: %s\n", symbols_note.c_str());
  return RunProcesses(flags, *cfg, *plan);
}

Result<void> WriteAll(int fd, std::span<const uint8_t> bytes, const std::string& what) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("writing " + what);
    done += static_cast<size_t>(n);
  }
  return Ok();
}

// A sealed memfd holding `bytes`: nothing can write, grow or shrink it once made.
Result<UniqueFd> SealedMemfd(const char* name, std::span<const uint8_t> bytes) {
  UniqueFd fd(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoError(std::string("memfd_create for the ") + name);
  RETURN_IF_ERROR(WriteAll(fd.get(), bytes, std::string("the ") + name + " memfd"));
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return ErrnoError(std::string("sealing the ") + name + " memfd");
  }
  return fd;
}

// Opens `path` for the VM process and returns "/proc/self/fd/N", the name it will read it by.
// A file to read must (still) be a regular file: opened without blocking, as in
// ReadFileLimited, so a FIFO put in its place since the check cannot hold us.
Result<std::string> PassFile(const std::string& path, int flags, std::vector<UniqueFd>& keep,
                             const std::string& what) {
  const bool read_only = (flags & O_ACCMODE) == O_RDONLY;
  UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC | (read_only ? O_NONBLOCK : 0), 0600));
  if (!fd.valid()) return Error(ErrorKind::kInvalidArgument, what + " '" + path + "'", errno);
  struct stat st {};
  if (read_only && (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))) {
    return InvalidArgument(what + " '" + path + "' is not a regular file");
  }
  std::string name = "/proc/self/fd/" + std::to_string(fd.get());
  keep.push_back(std::move(fd));
  return name;
}

// The manager: starts the device processes and the VM process (vmm-vcpu), each confined,
// forwards SIGINT/SIGTERM to the VM process, stops everything when any of them ends, and
// exits with the VM's status.
int RunProcesses(const RunFlags& flags, const VmConfig& cfg_in, const BootPlan& plan) {
  const bool kvm_compat = plan.kvm_compat;
  auto kvm = kvm::Kvm::Open();  // checks /dev/kvm and its API before anything starts
  if (!kvm) return Fail(kvm.error());
  // --event-log-out: created now (never over an existing file), filled once the log exists.
  UniqueFd log_copy;
  if (!flags.event_log_out.empty()) {
    log_copy.reset(open(flags.event_log_out.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!log_copy.valid()) {
      return Fail(Error(ErrorKind::kInvalidArgument,
                        "--event-log-out '" + flags.event_log_out + "'", errno));
    }
  }
  VmConfig cfg = cfg_in;
  std::vector<UniqueFd> passed;  // our copies of the fds the VM process gets
  passed.emplace_back(fcntl(kvm->fd(), F_DUPFD_CLOEXEC, 0));
  const int kvm_fd = passed.back().get();
  auto pass = [&](std::string& path, int oflags, const std::string& what) -> Result<void> {
    if (path.empty()) return Ok();
    ASSIGN_OR_RETURN(path, PassFile(path, oflags, passed, what));
    return Ok();
  };
  std::string symbols = flags.profile_symbols;
  // The kernel and initramfs as the manager read them once (PlanBoot): sealed copies, so the
  // bytes measured are the bytes the VM process loads.
  auto sealed = [&](std::string& path, std::span<const uint8_t> bytes,
                    const char* name) -> Result<void> {
    if (path.empty()) return Ok();
    ASSIGN_OR_RETURN(UniqueFd fd, SealedMemfd(name, bytes));
    path = "/proc/self/fd/" + std::to_string(fd.get());
    passed.push_back(std::move(fd));
    return Ok();
  };
  for (auto r :
       {sealed(cfg.kernel, plan.kernel_bytes, "kernel"),
        sealed(cfg.initramfs, plan.initrd_bytes, "initramfs"),
        cfg.serial == SerialMode::kFile
            ? pass(cfg.serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY, "--serial file")
            : Result<void>(Ok()),
        pass(symbols, O_RDONLY, "--profile-symbols")}) {
    if (!r) return Fail(r.error());
  }
  auto vcpu_binary = SiblingBinary("vmm-vcpu");
  if (!vcpu_binary) return Fail(vcpu_binary.error());
  // The API socket is bound before anything starts (a bad path fails first) and served once
  // every child exists.
  std::unique_ptr<ApiServer> api;
  if (!flags.api_socket.empty()) {
    auto bound = ApiServer::Bind(flags.api_socket);
    if (!bound) return Fail(bound.error());
    api = std::move(bound).value();
  }

  // The vTPM first, started (TPM2_Startup at locality 3) before any other process exists;
  // then the device processes (SpawnRole needs a single-threaded caller; we stay one).
  VtpmProcess tpm;
  std::string event_log;
  std::vector<uint8_t> measured_log;  // the host's copy of the log the VM gets
  if (cfg.tpm.enabled()) {
    auto started = StartVtpmProcess(cfg.tpm);
    if (!started) return Fail(started.error().Wrap("starting the vTPM process"));
    tpm = std::move(started).value();
    if (auto up = StartupTpm(tpm); !up) {
      std::string how = StopVtpmProcess(tpm, 0);
      if (!how.empty()) std::fprintf(stderr, "vmm: %s", how.c_str());
      return Fail(up.error().Wrap("starting the vTPM"));
    }
    // Measured boot: every measurement in the vTPM before the VM process exists, and the
    // log that records them in guest memory where the ACPI TPM2 table points.
    Result<MeasuredBoot> boot = MeasureVm(cfg_in, plan, flags.launch_policy_digest);
    Result<void> extended = boot ? ExtendMeasurements(tpm, *boot) : Result<void>(boot.error());
    if (extended && log_copy.valid()) {
      extended =
          WriteAll(log_copy.get(), boot->log, "--event-log-out '" + flags.event_log_out + "'");
    }
    Result<UniqueFd> log_fd =
        extended ? SealedMemfd("event-log", boot->log) : Result<UniqueFd>(extended.error());
    if (!log_fd) {
      std::string how = StopVtpmProcess(tpm, 0);
      if (!how.empty()) std::fprintf(stderr, "vmm: %s", how.c_str());
      return Fail(log_fd.error());
    }
    event_log = "/proc/self/fd/" + std::to_string(log_fd->get());
    passed.push_back(std::move(*log_fd));
    measured_log = boot->log;
  }
  auto devices = StartDeviceProcesses(cfg);
  if (!devices) {
    StopVtpmProcess(tpm, 0);
    return Fail(devices.error());
  }
  // What the VM process gets: the VM spec (vmm/contract/vm_spec.h), checked here as the VM
  // process will check it, and the fds it names.
  VmSpec spec = SpecFromConfig(cfg);
  spec.kvm_fd = kvm_fd;
  spec.event_log = event_log;
  sandbox::ConfineOptions o;
  o.role = std::string(sandbox::VcpuRole(kvm_compat));
  o.keep_fds = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
  for (const UniqueFd& fd : passed) o.keep_fds.push_back(fd.get());
  for (DeviceProcess& d : *devices) {
    spec.devices.push_back(d.Spec());
    o.keep_fds.push_back(d.sock.get());
  }
  if (tpm.guest.valid()) {
    spec.tpm_fd = tpm.guest.get();
    o.keep_fds.push_back(tpm.guest.get());
  }
  spec.diagnostics = {flags.profile, flags.exit_stats, symbols};
  std::string spec_json = VmSpecToJson(spec);
  Result<void> spec_ok = ValidateVmSpec(spec);
  if (spec_ok && spec_json.size() > kMaxVmSpecBytes) {
    spec_ok = InvalidArgument("the VM spec is " + std::to_string(spec_json.size()) +
                              " bytes, more than the " + std::to_string(kMaxVmSpecBytes) +
                              " allowed (a shorter --cmdline?)");
  }
  if (!spec_ok) {
    ReapDeviceProcesses(*devices, 0);
    StopVtpmProcess(tpm, 0);
    return Fail(spec_ok.error());
  }
  std::vector<std::string> argv = {"vmm-vcpu", "--spec", std::move(spec_json)};
  auto vcpu_child = SpawnManagedChild(o, *vcpu_binary, argv, "vcpu");
  if (!vcpu_child) {
    ReapDeviceProcesses(*devices, 0);
    StopVtpmProcess(tpm, 0);
    return Fail(vcpu_child.error().Wrap("starting the VM process"));
  }
  tpm.guest.reset();  // only the VM process holds the guest's channel
  ManagedChild& vcpu = *vcpu_child;
  const pid_t vcpu_pid = vcpu.pid;
  passed.clear();
  for (DeviceProcess& d : *devices) d.sock.reset();  // only the VM process holds the sessions
  if (api) {
    ApiServer::Handlers handlers;
    if (tpm.data.valid()) {
      // The API's worker thread is the only user of the manager's data channel from now on.
      auto esys = vtpm::OpenEsys(UniqueFd(fcntl(tpm.data.get(), F_DUPFD_CLOEXEC, 0)));
      if (esys) {
        auto shared = std::make_shared<vtpm::EsysContext>(std::move(esys).value());
        handlers.attest = [shared,
                           log = measured_log](const QuoteRequest& r) -> Result<std::string> {
          ASSIGN_OR_RETURN(attestation::Evidence ev, QuoteVm(shared->get(), r, log));
          return attestation::SerializeEvidence(ev);
        };
      } else {
        std::fprintf(stderr, "vmm: warning: no attestation on the API socket: %s\n",
                     esys.error().ToString().c_str());
      }
    }
    api->Serve(std::move(handlers));
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  UniqueFd sigfd(signalfd(-1, &stop, SFD_CLOEXEC));
  int code = kExitFailed;
  // Every child's stderr is a pipe to us (sandbox/child_log.h); a log at EOF has fd -1.
  std::vector<sandbox::ChildLog*> logs = {&vcpu.log, &tpm.child.log};
  for (DeviceProcess& d : *devices) logs.push_back(&d.child.log);
  for (;;) {
    std::vector<pollfd> fds = {{vcpu.pidfd.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
    for (DeviceProcess& d : *devices) {
      fds.push_back({d.child.running() ? d.child.pidfd.get() : -1, POLLIN, 0});
    }
    const size_t tpm_index = fds.size();
    fds.push_back({tpm.child.running() ? tpm.child.pidfd.get() : -1, POLLIN, 0});
    const size_t log_index = fds.size();
    for (sandbox::ChildLog* l : logs) fds.push_back({l->fd(), POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t i = 0; i < logs.size(); ++i) {
      if (fds[log_index + i].revents != 0) logs[i]->Forward();
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      if (read(sigfd.get(), &si, sizeof(si)) == sizeof(si))
        kill(vcpu_pid, static_cast<int>(si.ssi_signo));
    }
    if (fds[0].revents & POLLIN) {
      const ChildExit e = vcpu.Reap();
      if (e.how == ChildExit::How::kExited) {
        code = e.status;
      } else {
        std::fprintf(stderr, "vmm: error: the VM process (pid %d) %s\n", vcpu_pid, e.text.c_str());
      }
      break;
    }
    bool device_died = false;
    if (fds[tpm_index].revents & POLLIN) {
      // The vTPM never ends on its own while the manager's channel is open.
      const pid_t tpm_pid = tpm.child.pid;
      const ChildExit e = tpm.child.Reap();
      std::fprintf(stderr, "vmm: error: vTPM process (pid %d) %s; the VM stopped\n", tpm_pid,
                   e.text.c_str());
      device_died = true;
    }
    for (size_t i = 2; i < tpm_index; ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      DeviceProcess& d = (*devices)[i - 2];
      const ChildExit e = ReapDeviceProcess(d);
      // Status 0 is a device process that saw its session close: the VM process is on
      // its way out and its own status follows.
      if (e.Succeeded()) continue;
      std::fprintf(stderr, "vmm: error: %s; the VM stopped\n", e.text.c_str());
      device_died = true;
    }
    if (device_died) {
      kill(vcpu_pid, SIGKILL);
      vcpu.Reap();
      code = kExitFailed;
      break;
    }
  }
  api.reset();  // no API request may reach the vTPM while it stops
  std::string problems = ReapDeviceProcesses(*devices);
  problems += StopVtpmProcess(tpm);
  if (!problems.empty()) {
    std::fprintf(stderr, "vmm: %s", problems.c_str());
    if (code == 0) code = kExitFailed;
  }
  return code;
}

struct MeasureFlags {
  bool json = false;
  std::string log_out;
  std::string policy_out;
  std::string policy_id = "vmm measure";
};

// Writes `bytes` to a file that must not exist yet (`flag` names it in errors).
Result<void> WriteNewFile(const std::string& path, std::span<const uint8_t> bytes,
                          const std::string& flag) {
  FILE* f = std::fopen(path.c_str(), "wbx");
  if (f == nullptr) return Error(ErrorKind::kInvalidArgument, flag + " '" + path + "'", errno);
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) {
    return Error(ErrorKind::kSystem, "writing " + flag + " '" + path + "'", errno);
  }
  return {};
}

// vmm measure: what `vmm run` with the same flags measures into the vTPM, and the log.
int Measure(const RunFlags& given, const MeasureFlags& out) {
  auto cfg = ResolveConfig(given);
  if (!cfg) return Fail(cfg.error());
  if (!cfg->tpm.enabled()) {
    return Fail(InvalidArgument(
        "vmm measure: the VM has no vTPM (--tpm off), so nothing is measured; give the --tpm "
        "that vmm run gets"));
  }
  auto plan = PlanBoot(SpecFromConfig(*cfg), kvm::DetectFlavor());
  if (!plan) return Fail(plan.error());
  auto launch = DecideLaunch(given.launch_policy, *cfg, *plan);  // as vmm run decides
  if (!launch) return Fail(launch.error());
  if (!launch->refusals.empty()) return ReportRefusals(*launch);
  auto boot = MeasureVm(*cfg, *plan, launch->policy_digest);
  if (!boot) return Fail(boot.error());
  auto log = attestation::ParseEventLog(boot->log);
  if (!log) return Fail(log.error());
  // The policy first: a bad --policy-id must not leave a --log-out file behind.
  std::string policy_text;
  if (!out.policy_out.empty()) {
    auto policy = attestation::PolicyFromEventLog(*log, out.policy_id);
    if (!policy) return Fail(policy.error().Wrap("--policy-out"));
    policy_text = attestation::SerializePolicy(*policy);
  }
  if (!out.log_out.empty()) {
    if (auto r = WriteNewFile(out.log_out, boot->log, "--log-out"); !r) return Fail(r.error());
  }
  if (!out.policy_out.empty()) {
    std::span<const uint8_t> text(reinterpret_cast<const uint8_t*>(policy_text.data()),
                                  policy_text.size());
    if (auto r = WriteNewFile(out.policy_out, text, "--policy-out"); !r) return Fail(r.error());
  }
  if (out.json) {
    std::printf("%s\n", attestation::EventLogToJson(*log, boot->expected).c_str());
  } else {
    std::printf("%s", DescribeMeasuredBoot(*boot).c_str());
  }
  return 0;
}

struct AttestFlags {
  std::string api_socket;
  std::string nonce;
  std::string pcrs;
  std::string out;
  std::string ca_dir = kDefaultVtpmCaDir;
};

// vmm attest: asks a running VM's manager for a quote and writes the evidence bundle.
int Attest(const AttestFlags& flags) {
  QuoteRequest request;
  auto nonce = ParseHexBytes(flags.nonce);
  if (!nonce) return Fail(InvalidArgument("--nonce: not hex (two digits a byte)"));
  request.nonce = std::move(*nonce);
  request.pcrs = DefaultQuoteSelection();
  if (!flags.pcrs.empty()) {
    auto pcrs = ParsePcrSelection(flags.pcrs);
    if (!pcrs) return Fail(pcrs.error().Wrap("--pcrs"));
    request.pcrs = std::move(*pcrs);
  }
  if (auto ok = CheckQuoteRequest(request); !ok) return Fail(ok.error());
  // Refuse an existing --out before the VM does any work.
  UniqueFd out(open(flags.out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!out.valid()) {
    return Fail(Error(ErrorKind::kInvalidArgument, "--out '" + flags.out + "'", errno));
  }
  auto fail_out = [&](const Error& e) {
    unlink(flags.out.c_str());
    return Fail(e);
  };
  auto response =
      CallApi(flags.api_socket, "PUT", "/api/v1/vm.attest", AttestRequestToJson(request), 60);
  if (!response) return fail_out(response.error());
  if (response->status != 200) {
    const std::string message = ApiErrorMessage(*response);
    const ErrorKind kind =
        response->status == 400 ? ErrorKind::kInvalidArgument : ErrorKind::kProtocol;
    return fail_out(Error(
        kind, "the VM's manager answered " + std::to_string(response->status) + ": " + message));
  }
  auto evidence = attestation::ParseEvidence(
      std::span(reinterpret_cast<const uint8_t*>(response->body.data()), response->body.size()));
  if (!evidence) return fail_out(evidence.error().Wrap("the VM's manager sent a bad bundle"));
  if (evidence->nonce != request.nonce) {
    return fail_out(Error(ErrorKind::kProtocol, "the bundle is for another nonce"));
  }
  // The host CA's certificate completes the chain (a verifier anchors on its own copy).
  std::string ca_note;
  const std::string ca_path = flags.ca_dir + "/" + std::string(vtpm::kHostCaCertFile);
  auto ca = ReadFileLimited(ca_path, 64 * 1024, "--ca");
  const std::string ca_pem = ca ? std::string(ca->begin(), ca->end()) : std::string();
  if (ca && ca_pem.find("-----BEGIN CERTIFICATE-----") != std::string::npos) {
    evidence->ca_chain_pem.push_back(ca_pem);
  } else {
    ca_note = " (no CA certificate in the bundle: " +
              (ca ? ca_path + " is not a PEM certificate" : ca.error().ToString()) + ")";
  }
  const std::string text = attestation::SerializeEvidence(*evidence);
  if (write(out.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      fsync(out.get()) != 0) {
    return fail_out(Error(ErrorKind::kSystem, "writing --out '" + flags.out + "'", errno));
  }
  std::fprintf(stderr, "vmm attest: wrote %s: a quote of %s with a %zu-byte event log%s\n",
               flags.out.c_str(), PcrSelectionToString(request.pcrs).c_str(),
               evidence->event_log.size(), ca_note.c_str());
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"vmm: a privilege-separated KVM virtual machine monitor"};
  app.set_version_flag("--version", std::string("vmm ") + VMM_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 guest powered off; 1 the VM failed; 2 bad input; 128+N stopped by signal N.");

  // The VM's settings, the same for `run` and `measure` (whose PCRs are `run`'s).
  auto add_vm_flags = [](CLI::App* sub, RunFlags& f) {
    sub->add_option("--config", f.config_path,
                    "JSON file with the settings below as keys (kernel, initramfs, cmdline, cpus, "
                    "memory, serial, kvm-compat, disk, rng, tpm); flags override it")
        ->type_name("FILE");
    auto setting = [&, sub](const char* name, const char* help, const char* type) {
      sub->add_option_function<std::string>(
             std::string("--") + name,
             [&f, name](const std::string& v) { f.settings.emplace_back(name, v); }, help)
          ->type_name(type);
    };
    setting("kernel", "Kernel to boot: a PVH ELF (vmlinux, the test guest) or a bzImage", "PATH");
    setting("initramfs", "Initial RAM disk handed to the kernel", "PATH");
    setting("cmdline", "Kernel command line", "TEXT");
    setting("cpus", "Number of vCPUs: N or boot=N (default 1)", "boot=N");
    setting("memory", "Guest RAM: size=SIZE or SIZE, with K/M/G/T suffix (default 512M)",
            "size=SIZE");
    setting("serial", "COM1 output: tty (stdout, default), file=PATH, null, off", "MODE");
    sub->add_option_function<std::vector<std::string>>(
           "--disk",
           [&f](const std::vector<std::string>& v) {
             for (const std::string& d : v) f.settings.emplace_back("disk", d);
           },
           "virtio-blk disk served by its own confined process: path=IMG[,readonly=on] "
           "(repeatable, raw images)")
        ->type_name("path=IMG");
    sub->add_flag_callback(
        "--rng", [&f] { f.settings.emplace_back("rng", "on"); },
        "virtio-rng device served by its own confined process (from the host's getrandom)");
    setting(
        "tpm",
        "TPM 2.0 on the CRB interface, served by its own confined process (vmm-vtpm, "
        "libtpms): off (default), ephemeral (state lost when the VM stops), or "
        "state=DIR,key=FILE (state sealed with AES-256-GCM under the 32-byte key in FILE; "
        "DIR and FILE are created on first use). Before the guest runs the VMM sends TPM2_Startup "
        "and measures the boot into it (vmm measure prints what)",
        "MODE");
    setting("kvm-compat",
            "kvm_pvm compatibility module: auto (on when the host's KVM is kvm_pvm, default), "
            "on, off. When on, it completes the instructions kvm_pvm's emulator gives up on and "
            "adds kernel parameters (see --dry-run)",
            "MODE");
  };
  RunFlags flags;
  CLI::App* run = app.add_subcommand("run", "Boot a VM and run it until it powers off");
  add_vm_flags(run, flags);
  // The launch policy, for run and measure (whose PCR 1 names it).
  auto add_policy_flag = [](CLI::App* sub, RunFlags& f) {
    sub->add_option("--policy", f.launch_policy,
                    std::string("Launch policy (vmm-launch-policy/1) the VM must satisfy, checked "
                                "before anything starts; a refusal names the rule and exits 2. "
                                "Default: ") +
                        policy::kDefaultLaunchPolicyPath +
                        " if it exists, else none. Its SHA-256 is measured into PCR 1")
        ->type_name("FILE");
  };
  add_policy_flag(run, flags);
  RunFlags measure_flags;
  MeasureFlags measure_out;
  CLI::App* measure = app.add_subcommand(
      "measure",
      "Print the measured boot of a VM given as to `vmm run` (the TCG event log and the PCR "
      "values its vTPM will hold), without /dev/kvm and without starting anything");
  add_vm_flags(measure, measure_flags);
  add_policy_flag(measure, measure_flags);
  measure->add_flag("--json", measure_out.json, "Print JSON: the events and the expected PCRs");
  measure->add_option("--log-out", measure_out.log_out, "Write the binary event log to FILE")
      ->type_name("FILE");
  measure
      ->add_option("--policy-out", measure_out.policy_out,
                   "Write a reference-value policy (vmm-policy/1) for vmm-verify to FILE: this "
                   "boot's kernel, initramfs, command line, configuration, ACPI tables, CRTM "
                   "version, and PCRs 0-9 exact")
      ->type_name("FILE");
  measure
      ->add_option("--policy-id", measure_out.policy_id,
                   "The policy's id (reported as the EAR appraisal-policy-id; default "
                   "\"vmm measure\")")
      ->type_name("TEXT");
  measure->footer("Exit status: 0 printed; 2 bad input (flags, kernel, no --tpm).");
  run->add_flag("--profile", flags.profile,
                "Sample the guest RIP every millisecond and print the busiest kernel symbols "
                "at exit (costs one VM exit per sample); implies --exit-stats");
  run->add_option("--profile-symbols", flags.profile_symbols,
                  "Symbols for --profile: a vmlinux with a symbol table or a System.map "
                  "(default: the kernel itself if it has symbols, else System.map-VERSION "
                  "beside a vmlinuz-VERSION, else System.map in the kernel's directory)")
      ->type_name("PATH");
  run->add_flag("--exit-stats", flags.exit_stats,
                "Count the VM exits and print at exit where they went: by exit reason, and "
                "the busiest I/O ports and MMIO addresses (counted per vCPU, no locks)");
  run->add_option("--event-log-out", flags.event_log_out,
                  "With --tpm: write the TCG event log the guest gets (the bytes at the TPM2 "
                  "table's LASA, up to the last event) to FILE, which must not exist")
      ->type_name("FILE");
  run->add_option("--api-socket", flags.api_socket,
                  "Serve the management API (HTTP/1.1, JSON) on a unix socket at PATH, created "
                  "mode 0600 and removed at exit; vmm attest uses it")
      ->type_name("PATH");
  run->add_flag("--dry-run", flags.dry_run,
                "Check the configuration and the kernel, print the boot plan, do not start the VM");

  AttestFlags attest_flags;
  CLI::App* attest = app.add_subcommand(
      "attest",
      "Quote a running VM's vTPM through its manager (vmm run --api-socket) and write the "
      "evidence bundle (quote, PCR values, event log, AK and EK certificates, CA) for vmm-verify");
  attest->add_option("--api-socket", attest_flags.api_socket, "The VM's API socket")
      ->type_name("PATH")
      ->required();
  attest
      ->add_option("--nonce", attest_flags.nonce,
                   "The verifier's fresh nonce, 1 to 32 bytes in hex (the quote's extraData)")
      ->type_name("HEX")
      ->required();
  attest
      ->add_option("--pcrs", attest_flags.pcrs,
                   "PCRs to quote, tpm2-tools syntax (default sha256:0-9+sha384:0-9)")
      ->type_name("LIST");
  attest->add_option("--out", attest_flags.out, "Write the bundle to FILE (must not exist)")
      ->type_name("FILE")
      ->required();
  attest
      ->add_option("--ca", attest_flags.ca_dir,
                   "The host's vTPM CA directory: its certificate is added to the bundle")
      ->type_name("DIR")
      ->capture_default_str();
  attest->footer(
      "Exit status: 0 written; 1 the VM could not be quoted (no vTPM, no AK certificate, "
      "no answer); 2 bad input.");

  std::string role;
  CLI::App* sandbox =
      app.add_subcommand("sandbox", "Inspect the confinement of the VMM's process roles");
  sandbox->require_subcommand(1);
  sandbox->footer("Exit status: 0 printed; 2 an unknown role or bad flags.");
  CLI::App* show = sandbox->add_subcommand(
      "show", "Print a role's seccomp filter, one syscall a line with the reason beside it");
  std::string roles;
  for (const std::string& r : sandbox::RoleNames()) roles += (roles.empty() ? "" : ", ") + r;
  show->add_option("ROLE", role, "One of: " + roles)->required();

  VtpmCli vtpm(app);
  RunFlags policy_vm;  // vmm policy check|init: the VM, given as to vmm run
  PolicyCli policy(
      app, [&](CLI::App* sub) { add_vm_flags(sub, policy_vm); },
      [&]() -> Result<std::optional<VmConfig>> {
        if (policy_vm.config_path.empty() && policy_vm.settings.empty()) {
          return std::optional<VmConfig>();
        }
        ASSIGN_OR_RETURN(VmConfig vm, ResolveConfig(policy_vm));
        return std::optional<VmConfig>(std::move(vm));
      });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "vmm: error: %s\nRun 'vmm --help' or 'vmm run --help' for usage.\n",
                 e.what());
    return kExitUsage;
  }
  if (run->parsed()) return Run(flags);
  if (measure->parsed()) return Measure(measure_flags, measure_out);
  if (attest->parsed()) return Attest(attest_flags);
  if (vtpm.parsed()) return vtpm.Run();
  if (policy.parsed()) return policy.Run();
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
