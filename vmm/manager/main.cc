// `vmm`: the command-line front end. Exit codes: 0 the guest powered off (or asked for a
// reset, which stops the VM); 1 the VM failed (triple fault, unhandled exit, KVM or host
// error); 2 bad input (flags, config file, kernel, sizes); 128+N stopped by signal N.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <selinux/selinux.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include "base/cli.h"

#include "attestation/appraisal.h"
#include "attestation/broker_client.h"
#include "attestation/broker_io.h"
#include "attestation/broker_protocol.h"
#include "attestation/evidence.h"
#include "base/hex.h"
#include "base/version.h"
#include "sandbox/child_log.h"
#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "vmm/contract/layout.h"
#include "vmm/manager/api_server.h"
#include "vmm/manager/apparmor_cli.h"
#include "vmm/manager/apparmor_vm.h"
#include "vmm/manager/attest.h"
#include "vmm/manager/audit/audit_trail.h"
#include "vmm/manager/audit_cli.h"
#include "vmm/manager/audit_relay.h"
#include "vmm/manager/cgroup.h"
#include "vmm/manager/child_process.h"
#include "vmm/manager/config.h"
#include "vmm/manager/device_processes.h"
#include "vmm/manager/exit_status.h"
#include "vmm/manager/launch_check.h"
#include "vmm/manager/lifecycle.h"
#include "vmm/manager/mcs.h"
#include "vmm/manager/measured_boot.h"
#include "vmm/manager/policy_cli.h"
#include "vmm/manager/privilege.h"
#include "vmm/manager/vtpm_cli.h"
#include "vmm/manager/vtpm_commands.h"
#include "vmm/manager/vtpm_process.h"
#include "vmm/vm/boot/elf_symbols.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/machine/boot_plan.h"
#include "vmm/vm/tpm_crb/crb_device.h"
#include "vtpm/provision/ak_provision.h"
#include "vtpm/provision/ek_provision.h"
#include "vtpm/provision/host_ca.h"
#include "vtpm/provision/ossl.h"
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
  std::string api_socket_mode;   // octal, default 0600
  std::string api_socket_group;  // a group name or number
  std::string name = "vm";       // the VM's name on the API and in audit records
  std::string uuid;              // default: a new random one
  std::string audit_log;         // default: DefaultAuditLog()
  std::string audit_key;         // signs the log's checkpoints
  std::string cgroup = "auto";   // --cgroup: the launch policy's cgroup limits (cgroup.h)
  CgroupMode cgroup_mode = CgroupMode::kAuto;
  std::string apparmor = "auto";  // --apparmor: auto, on, off (apparmor_vm.h)
  // --policy (empty: the host default if it exists), and the admitting policy's SHA-256 that
  // Run() or Measure() found, measured into PCR 1 (launch_check.h).
  std::string launch_policy;
  std::string launch_policy_digest;
  // The policy that admitted the VM: its `roles` authorise the API's callers.
  std::shared_ptr<const policy::LaunchPolicy> admitting_policy;
  // --user: whom a root-started manager becomes (privilege.h); Run() resolves it.
  std::string user;
  std::optional<ManagerUser> drop_to;
};

// Where `vmm run` keeps its audit log when --audit-log is not given: the host's for root, the
// user's own state directory otherwise.
std::string DefaultAuditLog() {
  if (geteuid() == 0) return "/var/log/vmm/audit.jsonl";
  const char* state = getenv("XDG_STATE_HOME");
  if (state && state[0] == '/') return std::string(state) + "/vmm/audit.jsonl";
  const char* home = getenv("HOME");
  return std::string(home && home[0] == '/' ? home : "/tmp") + "/.local/state/vmm/audit.jsonl";
}

// The manager itself, as the subject of the records it makes for its own command line.
audit::Subject SelfSubject() {
  audit::Subject who;
  who.uid = getuid();
  who.gid = getgid();
  who.pid = getpid();
  char* context = nullptr;
  if (is_selinux_enabled() > 0 && getcon(&context) == 0 && context) {
    who.context = context;
    freecon(context);
  }
  return who;
}

// The run's audit records (ARCHITECTURE.md §10): start (allowed or refused), the API's calls,
// and stop. Without a trail (--dry-run) it records nothing.
struct RunAudit {
  audit::AuditTrail* trail = nullptr;
  AuditRelay* relay = nullptr;  // once the API threads exist, records go through the main loop
  std::string uuid, name;
  std::vector<std::pair<std::string, std::string>> start_details;

  Result<void> Record(const std::string& action, bool success, const std::string& reason,
                      std::vector<std::pair<std::string, std::string>> details = {},
                      audit::Subject who = SelfSubject()) const {
    if (!trail) return Ok();
    audit::Event e;
    e.action = action;
    e.who = std::move(who);
    e.vm_uuid = uuid;
    e.vm_name = name;
    e.details = std::move(details);
    if (!reason.empty()) e.details.emplace_back("reason", reason);
    e.success = success;
    return relay ? relay->Submit(e) : trail->Record(e);
  }
  void Warn(const Result<void>& r) const {
    if (!r) {
      std::fprintf(stderr, "vmm: warning: audit record not written to '%s': %s\n",
                   trail->path().c_str(), r.error().ToString().c_str());
    }
  }
};

std::vector<std::pair<std::string, std::string>> StartDetails(const VmConfig& cfg,
                                                              const BootPlan& plan) {
  std::vector<std::pair<std::string, std::string>> d = {
      {"kernel_sha256", Sha256Hex(plan.kernel_bytes)}};
  if (!plan.initrd_bytes.empty()) d.emplace_back("initramfs_sha256", Sha256Hex(plan.initrd_bytes));
  d.emplace_back("vcpus", std::to_string(cfg.cpus));
  d.emplace_back("mem_kib", std::to_string(cfg.memory / 1024));
  for (const DiskConfig& disk : cfg.disks) d.emplace_back("disk", disk.path);
  if (cfg.rng) d.emplace_back("rng", "getrandom");
  if (cfg.vsock) {
    d.emplace_back("vsock",
                   "cid=" + std::to_string(cfg.vsock->cid) + ",socket=" + cfg.vsock->socket);
  }
  if (cfg.tpm.enabled()) {
    d.emplace_back("tpm",
                   cfg.tpm.mode == TpmConfig::Mode::kEphemeral ? "ephemeral" : cfg.tpm.state_dir);
  }
  return d;
}

// --audit-log's directory, made (mode 0700) where it is missing, as a fresh host needs.
Result<void> MakeAuditDirectory(const std::string& log) {
  const size_t slash = log.rfind('/');
  if (slash == std::string::npos || slash == 0) return Ok();
  std::string dir;
  for (size_t at = 1; at != std::string::npos && at <= slash;) {
    at = log.find('/', at);
    if (at == std::string::npos || at > slash) break;
    dir = log.substr(0, at);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error(ErrorKind::kInvalidArgument, "--audit-log: cannot make '" + dir + "'", errno);
    }
    ++at;
  }
  return Ok();
}

// --name, --uuid and the API socket's permissions, checked before anything starts.
Result<ApiSocketOptions> CheckIdentityAndSocket(RunFlags& flags) {
  if (flags.name.empty() || flags.name.size() > 64 ||
      flags.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789._-") != std::string::npos) {
    return InvalidArgument("--name '" + flags.name + "': 1 to 64 letters, digits, '.', '_' or '-'");
  }
  if (flags.uuid.empty()) {
    flags.uuid = NewVmUuid();
  } else if (!IsVmUuid(flags.uuid)) {
    return InvalidArgument("--uuid '" + flags.uuid +
                           "': an RFC 4122 UUID in lower case, like 0b4e61b2-...-5f0c1a2b3c4d");
  }
  ASSIGN_OR_RETURN(flags.cgroup_mode, ParseCgroupMode(flags.cgroup));
  ApiSocketOptions o;
  if (!flags.api_socket_mode.empty()) {
    char* end = nullptr;
    const unsigned long mode = std::strtoul(flags.api_socket_mode.c_str(), &end, 8);
    if (*end != '\0' || mode > 0777 || (mode & 0600) != 0600) {
      return InvalidArgument("--api-socket-mode '" + flags.api_socket_mode +
                             "': octal permission bits that include 0600 (0600, 0660, 0666)");
    }
    o.mode = static_cast<mode_t>(mode);
  }
  if (!flags.api_socket_group.empty()) {
    const std::string& g = flags.api_socket_group;
    if (group* gr = getgrnam(g.c_str())) {
      o.group = gr->gr_gid;
    } else if (g.find_first_not_of("0123456789") == std::string::npos && g.size() <= 9) {
      o.group = static_cast<gid_t>(std::stoul(g));
    } else {
      return InvalidArgument("--api-socket-group '" + g + "': no such group");
    }
  }
  if ((!flags.api_socket_mode.empty() || !flags.api_socket_group.empty()) &&
      flags.api_socket.empty()) {
    return InvalidArgument("--api-socket-mode and --api-socket-group need --api-socket");
  }
  return o;
}

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

struct RunAudit;
int RunProcesses(const RunFlags& flags, const ApiSocketOptions& api_options, const VmConfig& cfg,
                 const BootPlan& plan, RunAudit& run_audit);

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
  RunFlags flags = given;
  auto api_options = CheckIdentityAndSocket(flags);
  if (!api_options) return Fail(api_options.error());
  auto cfg = ResolveConfig(given);
  if (!cfg) return Fail(cfg.error());
  auto plan = PlanBoot(SpecFromConfig(*cfg), kvm::DetectFlavor());
  if (!plan) return Fail(plan.error());
  // --- privilege drop (ARCHITECTURE.md §1): whom to become, checked before anything starts.
  std::string user_note;
  auto drop_to = ResolveManagerUser(flags.user, user_note);
  if (!drop_to) return Fail(drop_to.error());
  flags.drop_to = std::move(drop_to).value();
  if (!user_note.empty() && !flags.dry_run) {
    std::fprintf(stderr, "vmm: warning: %s\n", user_note.c_str());
  }
  // --- end privilege drop
  if (auto disks = CheckDiskImages(*cfg); !disks) return Fail(disks.error());
  if (auto vsock = CheckVsockSocket(*cfg); !vsock) return Fail(vsock.error());
  if (auto tpm = CheckTpmPaths(cfg->tpm, "--tpm"); !tpm) return Fail(tpm.error());
  if (!given.event_log_out.empty() && !cfg->tpm.enabled()) {
    return Fail(InvalidArgument(
        "--event-log-out: the VM has no vTPM (--tpm off), so there is no event log"));
  }
  std::string symbols_note = flags.profile ? ChooseProfileSymbols(flags, *cfg, *plan) : "";
  // The audit trail, before anything that could be refused: a run that starts nothing
  // (--dry-run) records nothing.
  std::unique_ptr<audit::AuditTrail> trail;
  RunAudit run_audit;
  if (!flags.dry_run) {
    audit::AuditTrail::Options o;
    o.path = flags.audit_log.empty() ? DefaultAuditLog() : flags.audit_log;
    o.checkpoint_key = flags.audit_key;
    if (flags.audit_log.empty()) {
      if (auto made = MakeAuditDirectory(o.path); !made) {
        return Fail(made.error().Wrap("the default audit log '" + o.path +
                                      "' (from $XDG_STATE_HOME or $HOME; give --audit-log)"));
      }
    }
    auto opened = audit::AuditTrail::Open(o);
    if (!opened) return Fail(opened.error().Wrap("--audit-log '" + o.path + "'"));
    trail = std::move(opened).value();
    run_audit = {trail.get(), nullptr, flags.uuid, flags.name, StartDetails(*cfg, *plan)};
  }
  // The launch policy decides before anything is created or printed (ARCHITECTURE.md §9); a
  // refusal is the start's audit record.
  auto launch = DecideLaunch(given.launch_policy, *cfg, *plan);
  if (!launch) {
    run_audit.Warn(
        run_audit.Record("start", false, launch.error().ToString(), run_audit.start_details));
    return Fail(launch.error());
  }
  flags.launch_policy_digest = launch->policy_digest;
  if (launch->policy) {
    flags.admitting_policy = std::make_shared<const policy::LaunchPolicy>(*launch->policy);
  }
  if (!launch->policy_digest.empty()) {
    run_audit.start_details.emplace_back("policy_sha256", launch->policy_digest);
  }
  if (!launch->refusals.empty()) {
    std::string reason = "launch policy '" + launch->policy_path + "' refuses this VM:";
    for (const policy::Refusal& r : launch->refusals)
      reason += " " + r.rule + ": " + r.message + ";";
    run_audit.Warn(run_audit.Record("start", false, reason, run_audit.start_details));
    return ReportRefusals(*launch);
  }
  if (flags.dry_run) {
    std::printf("configuration:\n%s\n%s", ConfigToJson(*cfg).c_str(),
                DescribeBootPlan(*plan).c_str());
    if (flags.profile) std::printf("profile: %s\n", symbols_note.c_str());
    std::printf("%s\n", SelinuxEnabled()
                            ? "selinux: each process and file of the VM at a free MCS pair "
                              "s0:cA,cB, chosen at start"
                            : "selinux: off on this host: no MCS labels");
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
  return RunProcesses(flags, *api_options, *cfg, *plan, run_audit);
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
// The API's vm.info without its state: who the VM is and what it booted. Made once at start
// (the image digests are the start's audit details, hashed once); each call adds the state.
nlohmann::json VmInfo(const RunFlags& flags, const VmConfig& cfg, const BootPlan& plan,
                      const std::vector<std::pair<std::string, std::string>>& start_details,
                      const std::string& started) {
  auto detail = [&](const char* key) {
    for (const auto& [k, v] : start_details) {
      if (k == key) return nlohmann::json(v);
    }
    return nlohmann::json(nullptr);
  };
  nlohmann::json doc = {
      {"name", flags.name},
      {"uuid", flags.uuid},
      {"started", started},
      {"vmm_version", VMM_VERSION},
      {"kernel_sha256", detail("kernel_sha256")},
      {"initramfs_sha256", detail("initramfs_sha256")},
      {"kvm_compat", plan.kvm_compat},
      {"selinux_level", SelinuxEnabled() ? nlohmann::json(ChildSelinuxLevel()) : nullptr},
  };
  doc["config"] = nlohmann::json::parse(ConfigToJson(cfg), nullptr, false);
  return doc;
}

// The API's vm.tpm.ek and vm.tpm.ak: the certificates in the vTPM's NV, as PEM.
Result<std::string> TpmCertificatesJson(ESYS_CONTEXT* esys, ApiAction which) {
  nlohmann::json doc = nlohmann::json::object();
  auto pem = [](Result<std::vector<uint8_t>> der) -> Result<nlohmann::json> {
    if (!der && der.error().kind() == ErrorKind::kNotFound) return nlohmann::json(nullptr);
    if (!der) return der.error();
    ASSIGN_OR_RETURN(X509Ptr cert, vtpm::CertFromDer(*der));
    ASSIGN_OR_RETURN(std::string text, vtpm::CertToPem(cert.get()));
    return nlohmann::json(text);
  };
  if (which == ApiAction::kTpmAk) {
    ASSIGN_OR_RETURN(doc["certificate"], pem(vtpm::ReadAkCertificate(esys)));
    doc["nv_index"] = Hex(vtpm::kAkCertNvIndex, 8);
  } else {
    ASSIGN_OR_RETURN(doc["rsa2048"], pem(vtpm::ReadEkCertificate(esys, vtpm::EkKind::kRsa2048)));
    ASSIGN_OR_RETURN(doc["ecc_p256"], pem(vtpm::ReadEkCertificate(esys, vtpm::EkKind::kEccP256)));
  }
  return doc.dump() + "\n";
}

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string NowRfc3339() {
  const time_t now = time(nullptr);
  tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

int RunProcesses(const RunFlags& flags, const ApiSocketOptions& api_options, const VmConfig& cfg_in,
                 const BootPlan& plan, RunAudit& run_audit) {
  // Every refusal before the VM process runs is the start's audit record.
  auto Fail = [&run_audit](const Error& e) {
    run_audit.Warn(run_audit.Record("start", false, e.ToString(), run_audit.start_details));
    return ::vmm::Fail(e);
  };
  const bool kvm_compat = plan.kvm_compat;
  auto kvm = kvm::Kvm::Open();  // checks /dev/kvm and its API before anything starts
  if (!kvm) return Fail(kvm.error());
  // sVirt: a category pair no running VM holds, for every child and file of this VM
  // (ARCHITECTURE.md §11). Without SELinux, one line says so and nothing is labelled.
  if (SelinuxEnabled()) {
    auto pair = PickMcsPair(McsPairsInUse(), RandomBelow);
    if (!pair) return Fail(pair.error().Wrap("selinux"));
    SetChildSelinuxLevel(pair->Level());
    std::fprintf(stderr, "vmm: selinux: this VM's processes and files at %s\n",
                 pair->Level().c_str());
    auto sockets = CreateSocketsAtLevel(pair->Level());
    if (!sockets) {
      std::fprintf(stderr, "vmm: selinux: %s: the children's sockets keep the manager's level\n",
                   sockets.error().ToString().c_str());
    }
  } else {
    std::fprintf(stderr, "vmm: selinux: off on this host: no MCS labels\n");
  }
  // The VM's AppArmor profiles, loaded before any child exists and removed when this returns.
  auto apparmor_mode = ParseAppArmorMode(flags.apparmor);
  if (!apparmor_mode) return Fail(apparmor_mode.error());
  auto apparmor = VmAppArmor::Load(cfg_in, kvm_compat, *apparmor_mode, [](const std::string& l) {
    std::fprintf(stderr, "vmm: %s\n", l.c_str());
  });
  if (!apparmor) return Fail(apparmor.error());
  const std::string apparmor_id = *apparmor ? (*apparmor)->id() : "";
  // --event-log-out: created now (never over an existing file), filled once the log exists.
  UniqueFd log_copy;
  if (!flags.event_log_out.empty()) {
    log_copy.reset(open(flags.event_log_out.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!log_copy.valid()) {
      return Fail(Error(ErrorKind::kInvalidArgument,
                        "--event-log-out '" + flags.event_log_out + "'", errno));
    }
    auto label = LabelVmFile(log_copy.get(), "vmm_event_log_t", ChildSelinuxLevel());
    if (!label) return Fail(label.error().Wrap("--event-log-out '" + flags.event_log_out + "'"));
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
  auto vcpu_binary = RoleBinary("vmm-vcpu");
  if (!vcpu_binary) return Fail(vcpu_binary.error());
  // The API socket is bound before anything starts (a bad path fails first) and served once
  // every child exists.
  std::unique_ptr<ApiServer> api;
  if (!flags.api_socket.empty()) {
    auto bound = ApiServer::Bind(flags.api_socket, api_options);
    if (!bound) return Fail(bound.error());
    api = std::move(bound).value();
  }

  // The VM's cgroup with the policy's limits, if the host delegates one: every child is cloned
  // into it (ARCHITECTURE.md §9), and it is removed when `cgroup` goes, after they are reaped.
  std::string cgroup_note;
  CgroupMode cgroup_mode = flags.cgroup_mode;
  if (flags.drop_to && cgroup_mode != CgroupMode::kOff && flags.admitting_policy &&
      flags.admitting_policy->cgroup) {
    // A manager that became --user may not clone its children into a cgroup root made: the
    // kernel also wants write access to the cgroup.procs of the common ancestor. Not yet.
    const std::string why = "not with --user " + flags.drop_to->name +
                            " yet (the user could not place the VM's processes in it; "
                            "--user root keeps the limits)";
    if (cgroup_mode == CgroupMode::kRequired) {
      return Fail(Error(ErrorKind::kInvalidArgument, "--cgroup required: cgroup limits " + why));
    }
    std::fprintf(stderr, "vmm: cgroup: no cgroup limits for this VM: %s\n", why.c_str());
    cgroup_mode = CgroupMode::kOff;
  }
  const bool said_why = cgroup_mode != flags.cgroup_mode;
  auto cgroup = SetUpVmCgroup(
      cgroup_mode, flags.admitting_policy ? flags.admitting_policy->cgroup : std::nullopt,
      flags.uuid, CgroupHost{}, &cgroup_note);
  if (!cgroup) return Fail(cgroup.error());
  if (!cgroup_note.empty() && !said_why) {
    std::fprintf(stderr, "vmm: cgroup: %s\n", cgroup_note.c_str());
  }
  std::optional<ChildCgroupScope> in_cgroup;
  if (*cgroup) {
    in_cgroup.emplace((*cgroup)->fd());
    for (auto& detail : (*cgroup)->AuditDetails()) run_audit.start_details.push_back(detail);
  } else if (flags.admitting_policy && flags.admitting_policy->cgroup) {
    run_audit.start_details.emplace_back("cgroup", "none");  // the policy's limits not applied
  }

  // --- privilege drop (ARCHITECTURE.md §1): what the children need is open; the manager
  // becomes its user before it starts any, so that it owns them and they get user namespaces.
  VtpmFiles tpm_files;
  std::vector<UniqueFd> images;
  {
    const uid_t owner = flags.drop_to ? flags.drop_to->uid : static_cast<uid_t>(-1);
    const gid_t group = flags.drop_to ? flags.drop_to->gid : static_cast<gid_t>(-1);
    auto files = cfg.tpm.enabled() ? OpenVtpmFiles(cfg.tpm, owner, group) : VtpmFiles{};
    if (!files) return Fail(files.error());
    tpm_files = std::move(files).value();
    auto opened = OpenDiskImages(cfg);
    if (!opened) return Fail(opened.error());
    images = std::move(opened).value();
    if (flags.drop_to) {
      if (auto dropped = DropPrivileges(*flags.drop_to); !dropped) return Fail(dropped.error());
    }
  }
  // --- end privilege drop
  // The vTPM first, started (TPM2_Startup at locality 3) before any other process exists;
  // then the device processes (SpawnRole needs a single-threaded caller; we stay one).
  VtpmProcess tpm;
  std::string event_log;
  std::vector<uint8_t> measured_log;  // the host's copy of the log the VM gets
  if (cfg.tpm.enabled()) {
    auto started = StartVtpmProcess(cfg.tpm, std::move(tpm_files), apparmor_id);
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
  auto devices = StartDeviceProcesses(cfg, std::move(images), apparmor_id);
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
  if (!apparmor_id.empty()) o.apparmor_profile = AppArmorProfileName(apparmor_id, "vcpu");
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
  auto lifecycle = Lifecycle::Create();
  auto relay = lifecycle ? AuditRelay::Create(run_audit.trail)
                         : Result<std::unique_ptr<AuditRelay>>(lifecycle.error());
  // The start's record: the VM runs only if it is written.
  std::vector<std::pair<std::string, std::string>> started_details = run_audit.start_details;
  started_details.emplace_back("vm_pid", std::to_string(vcpu_pid));
  Result<void> recorded =
      relay ? run_audit.Record("start", true, "", started_details) : Result<void>(relay.error());
  if (!recorded) {
    vcpu.Signal(SIGKILL);
    vcpu.Reap();
    ReapDeviceProcesses(*devices, 0);
    StopVtpmProcess(tpm, 0);
    return ::vmm::Fail(recorded.error().Wrap("the VM was stopped: its start could not be audited"));
  }
  const std::string started = NowRfc3339();
  std::atomic<uint64_t> attests_ok{0}, attests_failed{0};
  ApiServer::Handlers handlers;
  if (api) {
    Lifecycle* lc = &*lifecycle;
    handlers.lifecycle = [lc](const LifecycleRequest& r) { return lc->Submit(r); };
    // Roles from the launch policy (tenants bound to this VM by name or UUID); a policy without
    // roles, or none, leaves the API to the manager's own uid (ApiServer::Serve's default).
    if (flags.admitting_policy && !flags.admitting_policy->roles.empty()) {
      handlers.authorize = [p = flags.admitting_policy, name = flags.name,
                            uuid = flags.uuid](const ApiPeer& peer) {
        return policy::RoleFor(*p, peer.uid, peer.gid, peer.groups, name, uuid);
      };
    } else if (flags.drop_to) {
      // --- privilege drop: the uid that started the manager (root) stays its admin, beside
      // the uid it became.
      handlers.authorize = [self = flags.drop_to->uid](const ApiPeer& peer) {
        return peer.uid == 0 || peer.uid == self ? ApiRole::kAdmin : ApiRole::kNone;
      };
    }
    handlers.info = [lc, info = VmInfo(flags, cfg_in, plan, run_audit.start_details, started)] {
      nlohmann::json doc = info;
      doc["state"] = VmStateName(lc->state());
      // Paths are the operator's bytes, not always UTF-8: replaced, never thrown.
      return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    };
    handlers.counters = [lc, &attests_ok, &attests_failed] {
      const LifecycleCounts c = lc->counts();
      return nlohmann::json{
          {"lifecycle",
           {{"pause", c.pause},
            {"resume", c.resume},
            {"shutdown", c.shutdown},
            {"refused", c.refused}}},
          {"attest", {{"ok", attests_ok.load()}, {"failed", attests_failed.load()}}},
          {"state", VmStateName(lc->state())}}
          .dump();
    };
    if (tpm.data.valid()) {
      // The API's worker thread is the only user of the manager's data channel from now on.
      auto esys = vtpm::OpenEsys(UniqueFd(fcntl(tpm.data.get(), F_DUPFD_CLOEXEC, 0)));
      if (esys) {
        auto shared = std::make_shared<vtpm::EsysContext>(std::move(esys).value());
        handlers.attest = [shared, log = measured_log, &attests_ok,
                           &attests_failed](const QuoteRequest& r) -> Result<std::string> {
          auto ev = QuoteVm(shared->get(), r, log);
          ++(ev ? attests_ok : attests_failed);
          if (!ev) return ev.error();
          return attestation::SerializeEvidence(*ev);
        };
        handlers.tpm_certificates = [shared](ApiAction which) {
          return TpmCertificatesJson(shared->get(), which);
        };
      } else {
        std::fprintf(stderr, "vmm: warning: no attestation on the API socket: %s\n",
                     esys.error().ToString().c_str());
      }
    }
    run_audit.relay = relay->get();
    handlers.audit = [&run_audit](const ApiPeer& peer, ApiRole role, std::string_view endpoint,
                                  int status, std::string_view error) {
      // A read that succeeded (ping, info, counters) changes nothing and is not recorded, as
      // libvirt records no queries; every refusal, lifecycle action, quote and key export is.
      if (status < 300 &&
          (endpoint == "vmm.ping" || endpoint == "vm.info" || endpoint == "vm.counters")) {
        return;
      }
      // "vm.pause" -> "pause", "vm.tpm.ek" -> "tpm-ek": libvirt's op= words where they exist.
      std::string action(endpoint.substr(endpoint.find('.') + 1));
      std::replace(action.begin(), action.end(), '.', '-');
      audit::Subject who{peer.uid, peer.gid, peer.pid, peer.context};
      run_audit.Warn(run_audit.Record(
          action, status < 300, std::string(error),
          {{"role", std::string(ApiRoleName(role))}, {"http_status", std::to_string(status)}},
          who));
    };
  }
  // --- the manager's own confinement (ARCHITECTURE.md §1): every child runs and every file,
  // socket and pipe the manager will use is open; nothing from the API or the guest has been
  // read yet (the API thread starts below, and inherits this filter). From here on it cannot
  // exec, open a file for writing, make a socket or trace anything, root or not, and Landlock
  // lets it remove only the API socket's and the AppArmor file's entries and the cgroup's.
  if (*apparmor) {
    if (auto r = (*apparmor)->PrepareRemovalWithoutExec(); !r) {
      std::fprintf(stderr, "vmm: warning: %s: the VM's AppArmor profiles may stay loaded\n",
                   r.error().ToString().c_str());
    }
  }
  ManagerConfinement confinement;
  if (api) {
    confinement.api_socket = api->listen_fd();
    confinement.remove_files_beneath.push_back(api->socket_dir_fd());
  }
  if (*apparmor) confinement.remove_files_beneath.push_back((*apparmor)->file_dir_fd());
  if (*cgroup) confinement.remove_dirs_beneath.push_back((*cgroup)->parent_fd());
  if (auto confined = ConfineManager(confinement); !confined) {
    (*relay)->Close();
    vcpu.Signal(SIGKILL);
    vcpu.Reap();
    ReapDeviceProcesses(*devices, 0);
    StopVtpmProcess(tpm, 0);
    return ::vmm::Fail(confined.error().Wrap("the VM was stopped"));
  }
  if (api) api->Serve(std::move(handlers), /*confine=*/true);

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  UniqueFd sigfd(signalfd(-1, &stop, SFD_CLOEXEC));
  int code = kExitFailed;
  int64_t shutdown_deadline_ms = 0;  // vm.shutdown: when to stop a guest that ignores the button
  bool forced_stop = false;          // ... and it passed
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
    const size_t lifecycle_index = fds.size();
    fds.push_back({lifecycle->fd(), POLLIN, 0});
    fds.push_back({(*relay)->fd(), POLLIN, 0});
    int timeout_ms = -1;
    if (shutdown_deadline_ms > 0) {
      timeout_ms = static_cast<int>(std::max<int64_t>(0, shutdown_deadline_ms - MonotonicMs()));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[lifecycle_index + 1].revents & POLLIN) (*relay)->Drain();
    if (fds[lifecycle_index].revents & POLLIN) {
      lifecycle->Serve([&](const Transition& t) {
        for (int sig : t.signals) vcpu.Signal(sig);
        if (t.deadline_sec > 0) {
          shutdown_deadline_ms = MonotonicMs() + int64_t{t.deadline_sec} * 1000;
          std::fprintf(stderr,
                       "vmm: shutdown requested: ACPI power button pressed; the VM stops in "
                       "%u s if the guest has not powered off\n",
                       t.deadline_sec);
        }
      });
    }
    if (shutdown_deadline_ms > 0 && MonotonicMs() >= shutdown_deadline_ms) {
      std::fprintf(stderr,
                   "vmm: the guest did not power off before the shutdown deadline; stopping "
                   "the VM\n");
      vcpu.Signal(SIGTERM);
      shutdown_deadline_ms = 0;
      forced_stop = true;
    }
    for (size_t i = 0; i < logs.size(); ++i) {
      if (fds[log_index + i].revents != 0) logs[i]->Forward();
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      if (read(sigfd.get(), &si, sizeof(si)) == sizeof(si)) {
        vcpu.Signal(static_cast<int>(si.ssi_signo));
        // A paused VM process must run to take the signal.
        if (lifecycle->state() == VmState::kPaused) vcpu.Signal(SIGCONT);
      }
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
      vcpu.Signal(SIGKILL);
      vcpu.Reap();
      code = kExitFailed;
      break;
    }
  }
  (*relay)->Close();  // records the API calls still waiting; later ones are not waited for
  api.reset();        // no API request may reach the vTPM while it stops
  run_audit.relay = nullptr;
  std::string problems = ReapDeviceProcesses(*devices);
  problems += StopVtpmProcess(tpm);
  if (!problems.empty()) {
    std::fprintf(stderr, "vmm: %s", problems.c_str());
    if (code == 0) code = kExitFailed;
  }
  const std::string how = code == 0     ? "poweroff"
                          : forced_stop ? "shutdown-deadline"
                          : code > 128  ? "signal"
                                        : "failed";
  run_audit.Warn(run_audit.Record("stop", code == 0 || forced_stop, how,
                                  {{"exit_status", std::to_string(code)}}));
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
  std::string broker;  // with --secret and --secret-out: ask a key broker instead
  std::string secret;
  std::string secret_out;
};

// Asks the VM's manager for a quote over `request` and adds the host CA's certificate to the
// bundle (a verifier anchors on its own copy); `ca_note` says why none was added.
Result<attestation::Evidence> QuoteThroughManager(const AttestFlags& flags,
                                                  const QuoteRequest& request,
                                                  std::string* ca_note) {
  auto response =
      CallApi(flags.api_socket, "PUT", "/api/v1/vm.attest", AttestRequestToJson(request), 60);
  if (!response) return response.error();
  if (response->status != 200) {
    const std::string message = ApiErrorMessage(*response);
    const ErrorKind kind =
        response->status == 400 ? ErrorKind::kInvalidArgument : ErrorKind::kProtocol;
    return Error(kind,
                 "the VM's manager answered " + std::to_string(response->status) + ": " + message);
  }
  auto evidence = attestation::ParseEvidence(
      std::span(reinterpret_cast<const uint8_t*>(response->body.data()), response->body.size()));
  if (!evidence) return evidence.error().Wrap("the VM's manager sent a bad bundle");
  if (evidence->nonce != request.nonce) {
    return Error(ErrorKind::kProtocol, "the bundle is for another nonce");
  }
  const std::string ca_path = flags.ca_dir + "/" + std::string(vtpm::kHostCaCertFile);
  auto ca = ReadFileLimited(ca_path, 64 * 1024, "--ca");
  const std::string ca_pem = ca ? std::string(ca->begin(), ca->end()) : std::string();
  if (ca && ca_pem.find("-----BEGIN CERTIFICATE-----") != std::string::npos) {
    evidence->ca_chain_pem.push_back(ca_pem);
  } else {
    *ca_note = " (no CA certificate in the bundle: " +
               (ca ? ca_path + " is not a PEM certificate" : ca.error().ToString()) + ")";
  }
  return evidence;
}

Result<PcrSelection> AttestSelection(const AttestFlags& flags) {
  if (flags.pcrs.empty()) return DefaultQuoteSelection();
  auto pcrs = ParsePcrSelection(flags.pcrs);
  if (!pcrs) return pcrs.error().Wrap("--pcrs");
  return pcrs;
}

// vmm attest --broker: runs the key broker's protocol (README "Key broker"), quoting through
// the manager with SHA-256(broker nonce || this process's ephemeral key) as the nonce.
int AttestForSecret(const AttestFlags& flags) {
  auto address = attestation::ParseBrokerAddress(flags.broker);
  if (!address) return Fail(address.error().Wrap("--broker"));
  if (auto ok = attestation::CheckSecretName(flags.secret); !ok) {
    return Fail(ok.error().Wrap("--secret"));
  }
  auto selection = AttestSelection(flags);
  if (!selection) return Fail(selection.error());
  UniqueFd out(open(flags.secret_out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) {
    return Fail(
        Error(ErrorKind::kInvalidArgument, "--secret-out '" + flags.secret_out + "'", errno));
  }
  auto fail_out = [&](const Error& e) {
    unlink(flags.secret_out.c_str());
    return Fail(e);
  };
  attestation::BrokerTransport send = [&](std::string_view body) {
    return attestation::Exchange(*address, body, 60);
  };
  std::string ca_note;
  attestation::QuoteForData quote =
      [&](std::span<const uint8_t> data) -> Result<std::vector<uint8_t>> {
    QuoteRequest request{std::vector<uint8_t>(data.begin(), data.end()), *selection};
    RETURN_IF_ERROR(CheckQuoteRequest(request));
    ASSIGN_OR_RETURN(attestation::Evidence evidence, QuoteThroughManager(flags, request, &ca_note));
    const std::string text = attestation::SerializeEvidence(evidence);
    return std::vector<uint8_t>(text.begin(), text.end());
  };
  auto outcome = attestation::FetchSecret(flags.secret, send, quote);
  if (!outcome) return fail_out(outcome.error());
  const std::vector<uint8_t>& secret = outcome->secret;
  if (write(out.get(), secret.data(), secret.size()) != static_cast<ssize_t>(secret.size()) ||
      fsync(out.get()) != 0) {
    return fail_out(
        Error(ErrorKind::kSystem, "writing --secret-out '" + flags.secret_out + "'", errno));
  }
  std::fprintf(stderr, "vmm attest: the broker at %s released \"%s\" (%zu bytes) to %s%s\n",
               address->ToString().c_str(), flags.secret.c_str(), secret.size(),
               flags.secret_out.c_str(), ca_note.c_str());
  return 0;
}

// vmm attest: asks a running VM's manager for a quote and writes the evidence bundle.
int Attest(const AttestFlags& flags) {
  const bool broker = !flags.broker.empty() || !flags.secret.empty() || !flags.secret_out.empty();
  if (broker) {
    if (flags.broker.empty() || flags.secret.empty() || flags.secret_out.empty()) {
      return Fail(InvalidArgument("--broker, --secret and --secret-out go together"));
    }
    if (!flags.nonce.empty() || !flags.out.empty()) {
      return Fail(InvalidArgument("--nonce and --out are for a bundle; --broker makes its own"));
    }
    return AttestForSecret(flags);
  }
  if (flags.nonce.empty() || flags.out.empty()) {
    return Fail(
        InvalidArgument("--nonce and --out are required (or --broker, --secret and "
                        "--secret-out)"));
  }
  QuoteRequest request;
  auto nonce = ParseHexBytes(flags.nonce);
  if (!nonce) return Fail(InvalidArgument("--nonce: not hex (two digits a byte)"));
  request.nonce = std::move(*nonce);
  auto selection = AttestSelection(flags);
  if (!selection) return Fail(selection.error());
  request.pcrs = std::move(*selection);
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
  std::string ca_note;
  auto evidence = QuoteThroughManager(flags, request, &ca_note);
  if (!evidence) return fail_out(evidence.error());
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

struct CtlFlags {
  std::string api_socket;
  uint32_t deadline_sec = kDefaultShutdownDeadlineSec;
};

// `vmm ctl COMMAND`: one API call, its JSON answer on stdout.
int Ctl(const CtlFlags& flags, ApiAction action) {
  const ApiEndpoint& e = EndpointOf(action);
  std::string body;
  if (action == ApiAction::kShutdown) {
    body = nlohmann::json{{"deadline_sec", flags.deadline_sec}}.dump();
  } else if (e.method == "PUT") {
    body = "{}";
  }
  auto response = CallApi(flags.api_socket, std::string(e.method), std::string(e.path), body, 30);
  if (!response) return Fail(response.error());
  if (response->status >= 300) {
    std::fprintf(stderr, "vmm ctl: error: %s (HTTP %d)\n", ApiErrorMessage(*response).c_str(),
                 response->status);
    return response->status == 400 ? kExitUsage : kExitFailed;
  }
  std::fwrite(response->body.data(), 1, response->body.size(), stdout);
  if (!response->body.empty() && response->body.back() != '\n') std::fputc('\n', stdout);
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
                    "memory, serial, kvm-compat, disk, rng, tpm, vsock); flags override it")
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
    setting("vsock",
            "virtio-vsock device served by its own confined process: cid=N (3 to 4294967294), "
            "socket=PATH (absolute; host clients connect there and send 'CONNECT <port>\\n'; "
            "guest connections to CID 2 port P go to the listener at PATH_P)",
            "cid=N,socket=PATH");
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
  run->add_option("--apparmor", flags.apparmor,
                  "AppArmor: auto (each child under its VM's generated profile where AppArmor is "
                  "the host's LSM, default), on (fail without it), off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->type_name("MODE");
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
  AddTypedOption(measure, "--log-out", measure_out.log_out, "Write the binary event log to FILE",
                 "FILE");
  AddTypedOption(measure, "--policy-out", measure_out.policy_out,
                 "Write a reference-value policy (vmm-policy/1) for vmm-verify to FILE: this "
                 "boot's kernel, initramfs, command line, configuration, ACPI tables, CRTM "
                 "version, and PCRs 0-9 exact",
                 "FILE");
  measure
      ->add_option("--policy-id", measure_out.policy_id,
                   "The policy's id (reported as the EAR appraisal-policy-id; default "
                   "\"vmm measure\")")
      ->type_name("TEXT");
  measure->footer("Exit status: 0 printed; 2 bad input (flags, kernel, no --tpm).");
  run->add_flag("--profile", flags.profile,
                "Sample the guest RIP every millisecond and print the busiest kernel symbols "
                "at exit (costs one VM exit per sample); implies --exit-stats");
  AddTypedOption(run, "--profile-symbols", flags.profile_symbols,
                 "Symbols for --profile: a vmlinux with a symbol table or a System.map "
                 "(default: the kernel itself if it has symbols, else System.map-VERSION "
                 "beside a vmlinuz-VERSION, else System.map in the kernel's directory)",
                 "PATH");
  run->add_flag("--exit-stats", flags.exit_stats,
                "Count the VM exits and print at exit where they went: by exit reason, and "
                "the busiest I/O ports and MMIO addresses (counted per vCPU, no locks)");
  AddTypedOption(run, "--event-log-out", flags.event_log_out,
                 "With --tpm: write the TCG event log the guest gets (the bytes at the TPM2 "
                 "table's LASA, up to the last event) to FILE, which must not exist",
                 "FILE");
  run->add_option("--api-socket", flags.api_socket,
                  "Serve the management API (HTTP/1.1, JSON) on a unix socket at PATH, created "
                  "mode 0600 and removed at exit; vmm ctl and vmm attest use it, and so does "
                  "curl --unix-socket PATH http://localhost/api/v1/vm.info")
      ->type_name("PATH");
  run->add_option("--api-socket-mode", flags.api_socket_mode,
                  "The API socket's permissions, octal, at least 0600 (0660 lets the socket's "
                  "group connect; what each caller may do is still its role's)")
      ->type_name("MODE");
  AddTypedOption(run, "--api-socket-group", flags.api_socket_group,
                 "The API socket's group (a name or number)", "GROUP");
  AddTypedOption(run, "--audit-log", flags.audit_log,
                 "Append this run's audit records (start, every API call, stop) to FILE, a "
                 "hash-chained JSON-lines log that vmm audit verify checks (default "
                 "/var/log/vmm/audit.jsonl for root, else ~/.local/state/vmm/audit.jsonl)",
                 "FILE");
  run->add_option("--user", flags.user,
                  "Started as root: become USER (no capabilities, no new privileges) once "
                  "/dev/kvm, the images, the vTPM's files, the API socket and the audit log are "
                  "open, before any child starts (default: the system user vmm if it exists, "
                  "else stay root with a warning; root: stay root)")
      ->type_name("USER");
  AddTypedOption(run, "--audit-key", flags.audit_key,
                 "Sign the audit log's checkpoints with this EC P-256 private key (PEM, mode "
                 "0600)",
                 "FILE");
  AddTypedOption(run, "--name", flags.name,
                 "The VM's name on the API and in audit records (default \"vm\")", "NAME");
  AddTypedOption(run, "--uuid", flags.uuid,
                 "The VM's UUID on the API and in audit records (default: a new random one)",
                 "UUID");
  run->add_option("--cgroup", flags.cgroup,
                  "The launch policy's cgroup v2 limits (limits.cgroup: CPU, memory, tasks): "
                  "auto (default) applies them in a cgroup vmm-UUID of the VM's own where the "
                  "host delegates a cgroup to vmm, and says in one line why not elsewhere; "
                  "required refuses to start the VM without them; off ignores them")
      ->type_name("off|auto|required");
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
  AddTypedOption(attest, "--nonce", attest_flags.nonce,
                 "The verifier's fresh nonce, 1 to 32 bytes in hex (the quote's extraData)", "HEX");
  AddTypedOption(attest, "--pcrs", attest_flags.pcrs,
                 "PCRs to quote, tpm2-tools syntax (default sha256:0-9+sha384:0-9)", "LIST");
  AddTypedOption(attest, "--out", attest_flags.out, "Write the bundle to FILE (must not exist)",
                 "FILE");
  attest
      ->add_option("--broker", attest_flags.broker,
                   "Instead of --nonce and --out: get a secret from the key broker at ADDR "
                   "(vmm-verify serve; unix:PATH or tcp:A.B.C.D:PORT)")
      ->type_name("ADDR");
  AddTypedOption(attest, "--secret", attest_flags.secret, "With --broker: the secret's name",
                 "NAME");
  AddTypedOption(attest, "--secret-out", attest_flags.secret_out,
                 "With --broker: write the released secret to FILE (mode 0600, must not exist)",
                 "FILE");
  attest
      ->add_option("--ca", attest_flags.ca_dir,
                   "The host's vTPM CA directory: its certificate is added to the bundle")
      ->type_name("DIR")
      ->capture_default_str();
  attest->footer(
      "Exit status: 0 written; 1 the VM could not be quoted (no vTPM, no AK certificate, "
      "no answer) or the broker withheld the secret; 2 bad input.");

  CtlFlags ctl_flags;
  CLI::App* ctl = app.add_subcommand(
      "ctl", "Call a running VM's management API (vmm run --api-socket) and print the answer");
  ctl->add_option("--api-socket", ctl_flags.api_socket, "The VM's API socket")
      ->type_name("PATH")
      ->required();
  ctl->require_subcommand(1);
  ctl->footer(
      "Exit status: 0 done (the JSON answer on stdout); 1 refused (403, 409) or failed; 2 bad "
      "input.");
  const std::pair<ApiAction, const char*> ctl_commands[] = {
      {ApiAction::kPing, "The VMM's version"},
      {ApiAction::kInfo, "The VM's name, UUID, state, configuration and image digests"},
      {ApiAction::kCounters, "Counts of API calls, lifecycle actions and attestations"},
      {ApiAction::kPause, "Stop every vCPU (the VM process is stopped; devices idle)"},
      {ApiAction::kResume, "Run a paused VM again"},
      {ApiAction::kShutdown,
       "Press the ACPI power button; stop the VM if the guest has not powered off by the "
       "deadline"},
      {ApiAction::kTpmEk, "The vTPM's EK certificates (PEM)"},
      {ApiAction::kTpmAk, "The vTPM's AK certificate (PEM)"},
  };
  std::vector<std::pair<CLI::App*, ApiAction>> ctl_subs;
  for (const auto& [action, help] : ctl_commands) {
    std::string_view name = EndpointOf(action).name;
    name.remove_prefix(name.find('.') + 1);  // "vm.tpm.ek" -> "tpm.ek"
    std::string command(name);
    if (command.rfind("tpm.", 0) == 0) command = command.substr(4);  // "ek", "ak"
    CLI::App* sub = ctl->add_subcommand(command, help);
    if (action == ApiAction::kShutdown) {
      sub->add_option("--deadline-sec", ctl_flags.deadline_sec,
                      "Seconds the guest has to power off (1-300, default 10)")
          ->check(CLI::Range(1u, kMaxShutdownDeadlineSec));
    }
    ctl_subs.emplace_back(sub, action);
  }

  std::string role;
  CLI::App* sandbox =
      app.add_subcommand("sandbox", "Inspect the confinement of the VMM's process roles");
  sandbox->require_subcommand(1);
  sandbox->footer("Exit status: 0 printed; 2 an unknown role or bad flags.");
  CLI::App* show = sandbox->add_subcommand(
      "show", "Print a role's seccomp filter, one syscall a line with the reason beside it");
  std::string roles;
  for (const std::string& r : sandbox::RoleNames()) roles += (roles.empty() ? "" : ", ") + r;
  roles += std::string(", ") + std::string(sandbox::kManagerRole);  // the manager's own filter
  show->add_option("ROLE", role, "One of: " + roles)->required();

  VtpmCli vtpm(app);
  AppArmorCli apparmor(app);
  AuditCli audit(app);
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

  if (std::optional<int> done =
          ParseCommandLine(app, argc, argv, "vmm", "vmm --help' or 'vmm run --help")) {
    return *done;
  }
  if (run->parsed()) {
    const int code = Run(flags);
    // Under its own filter, exit handlers (a sanitizer build's leak checker) would make calls
    // the filter refuses: everything of the run is closed by now, so end as the children do.
    if (ManagerConfined()) sandbox::ExitConfined(code);
    return code;
  }
  if (measure->parsed()) return Measure(measure_flags, measure_out);
  if (attest->parsed()) return Attest(attest_flags);
  for (const auto& [sub, action] : ctl_subs) {
    if (sub->parsed()) return Ctl(ctl_flags, action);
  }
  if (vtpm.parsed()) return vtpm.Run();
  if (apparmor.parsed()) return apparmor.Run();
  if (audit.parsed()) return audit.Run();
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
