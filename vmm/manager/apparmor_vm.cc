#include "vmm/manager/apparmor_vm.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/apparmor.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/unique_fd.h"
#include "vmm/contract/device_table.h"
#include "vmm/manager/device_processes.h"

namespace vmm {
namespace {

Result<std::string> Resolve(const std::string& path, const std::string& what) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) {
    return Error(ErrorKind::kInvalidArgument, what + " '" + path + "'", errno);
  }
  return std::string(buf);
}

Result<std::string> NewVmId() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof(v), 0) != sizeof(v)) return ErrnoError("getrandom");
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf);
}

Result<void> WriteNewFile(const std::string& path, const std::string& text) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return ErrnoError("create '" + path + "'");
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoError("write '" + path + "'");
  }
  return Ok();
}

Result<void> MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("mkdir " + part);
  }
  return Ok();
}

}  // namespace

Result<AppArmorMode> ParseAppArmorMode(std::string_view text) {
  if (text == "auto") return AppArmorMode::kAuto;
  if (text == "on") return AppArmorMode::kOn;
  if (text == "off") return AppArmorMode::kOff;
  return InvalidArgument("--apparmor '" + std::string(text) + "': auto, on or off");
}

std::string AppArmorUnavailableReason() {
  if (aa_is_enabled() == 1) return "";
  switch (errno) {
    case ENOSYS:
      return "AppArmor is not available in this kernel";
    case ECANCELED:
      return "AppArmor is available but disabled at boot";
    case EBUSY:
      return "AppArmor is not the LSM in charge (another LSM took the slot)";
    case ENOENT:
      return "AppArmor's filesystem (securityfs) is not mounted";
    case EPERM:
    case EACCES:
      return "AppArmor's state is not readable here";
    default:
      return "AppArmor is not enabled (" + std::string(strerror(errno)) + ")";
  }
}

Result<AppArmorVm> AppArmorVmFor(const VmConfig& cfg, bool kvm_compat, std::string id) {
  AppArmorVm vm;
  vm.id = std::move(id);
  vm.vcpu_role = kvm_compat ? "vcpu-kvm-pvm" : "vcpu";
  if (cfg.serial == SerialMode::kFile) {
    ASSIGN_OR_RETURN(std::string p, Resolve(cfg.serial_path, "--serial file"));
    vm.vcpu_files.push_back(p);
  }
  for (const PlannedDevice& p : PlanDevices(cfg)) {
    AppArmorDevice d{.name = p.name, .role = std::string(p.kind->role)};
    if (p.disk != nullptr) {
      ASSIGN_OR_RETURN(d.image, Resolve(p.disk->path, "--disk"));
      d.readonly = p.disk->readonly;
    }
    if (p.vsock != nullptr) {
      // The device process binds the directory of its socket (ARCHITECTURE.md §3 Vsock).
      const std::string& sock = p.vsock->socket;
      const size_t slash = sock.find_last_of('/');
      const std::string dir = slash == 0 ? "/" : sock.substr(0, slash);
      ASSIGN_OR_RETURN(d.socket_dir, Resolve(dir, "--vsock socket directory"));
    }
    vm.devices.push_back(std::move(d));
  }
  vm.vtpm = cfg.tpm.enabled();
  if (vm.vtpm && cfg.tpm.mode == TpmConfig::Mode::kPersistent) {
    // The manager creates a missing state directory (StartVtpmProcess): resolve its parent.
    const std::string& dir = cfg.tpm.state_dir;
    auto resolved = Resolve(dir, "--tpm state directory");
    if (!resolved && resolved.error().sys_errno() == ENOENT) {
      size_t slash = dir.find_last_of('/', dir.size() > 1 ? dir.size() - 2 : 0);
      std::string parent = slash == std::string::npos ? "." : dir.substr(0, slash + 1);
      std::string leaf = dir.substr(slash == std::string::npos ? 0 : slash + 1);
      while (!leaf.empty() && leaf.back() == '/') leaf.pop_back();
      ASSIGN_OR_RETURN(std::string p, Resolve(parent, "--tpm state directory's parent"));
      resolved = (p == "/" ? p : p + "/") + leaf;
    }
    if (!resolved) return resolved.error();
    vm.tpm_state_dir = *resolved;
  }
  return vm;
}

Result<void> RunAppArmorParser(const std::vector<std::string>& args) {
  std::vector<char*> argv{const_cast<char*>("apparmor_parser")};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kAppArmorParser, nullptr, nullptr, argv.data(), envp);
  if (rc != 0) return Error(ErrorKind::kSystem, std::string("run ") + kAppArmorParser, rc);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Ok();
  return Error(
      ErrorKind::kSystem,
      std::string(kAppArmorParser) + " " + args.front() + " failed (exit status " +
          std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) +
          "; are the abstractions of apparmor/ installed in /etc/apparmor.d/abstractions/vmm, "
          "and is the manager root?)");
}

Result<std::unique_ptr<VmAppArmor>> VmAppArmor::Load(const VmConfig& cfg, bool kvm_compat,
                                                     AppArmorMode mode,
                                                     const std::function<void(std::string)>& log) {
  if (mode == AppArmorMode::kOff) {
    log("apparmor: off (--apparmor off)");
    return std::unique_ptr<VmAppArmor>();
  }
  if (std::string why = AppArmorUnavailableReason(); !why.empty()) {
    if (mode == AppArmorMode::kOn) return Error(ErrorKind::kUnsupported, "--apparmor on: " + why);
    log("apparmor: skipped: " + why);
    return std::unique_ptr<VmAppArmor>();
  }
  ASSIGN_OR_RETURN(std::string id, NewVmId());
  ASSIGN_OR_RETURN(AppArmorVm vm, AppArmorVmFor(cfg, kvm_compat, id));
  ASSIGN_OR_RETURN(std::string text, VmAppArmorProfiles(vm));
  RETURN_IF_ERROR(MakeDirs(kAppArmorRunDir));
  std::string file = std::string(kAppArmorRunDir) + "/vmm-" + id;
  RETURN_IF_ERROR(WriteNewFile(file, text));
  std::vector<std::string> names = {AppArmorProfileName(vm.id, "vcpu")};
  for (const AppArmorDevice& d : vm.devices) names.push_back(AppArmorProfileName(vm.id, d.name));
  if (vm.vtpm) names.push_back(AppArmorProfileName(vm.id, "vtpm"));
  std::unique_ptr<VmAppArmor> loaded(new VmAppArmor(id, file, std::move(names)));
  loaded->file_dir_.reset(open(kAppArmorRunDir, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!loaded->file_dir_.valid()) {
    auto err = ErrnoError(std::string("apparmor: opening ") + kAppArmorRunDir);
    unlink(file.c_str());
    loaded->file_.clear();
    return err;
  }
  auto r = RunAppArmorParser({"--replace", "--skip-cache", file});
  if (!r) {
    unlink(file.c_str());
    loaded->file_.clear();
    return r.error().Wrap("loading the VM's AppArmor profiles");
  }
  log("apparmor: loaded the VM's profiles vmm-" + id + "-* from " + file);
  return loaded;
}

Result<void> VmAppArmor::PrepareRemovalWithoutExec() {
  no_exec_ = true;
  char* mount = nullptr;
  if (aa_find_mountpoint(&mount) != 0) return ErrnoError("apparmor: finding apparmorfs");
  const std::string path = std::string(mount) + "/.remove";
  std::free(mount);
  remove_.reset(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!remove_.valid()) return ErrnoError("apparmor: opening " + path);
  return Ok();
}

VmAppArmor::~VmAppArmor() {
  if (file_.empty()) return;
  bool left = false;
  if (remove_.valid()) {
    // One write per profile, its name as apparmor_parser --remove writes it. The kernel checks
    // the writer's right to manage policy (CAP_MAC_ADMIN): a manager that became --user may
    // be refused, and then says so and keeps the file for the command below.
    for (const std::string& name : names_) {
      if (write(remove_.get(), name.data(), name.size()) < 0 && errno != ENOENT) {
        std::fprintf(stderr, "vmm: warning: apparmor: removing profile %s: %s\n", name.c_str(),
                     std::strerror(errno));
        left = true;
      }
    }
  }
  if (left || (no_exec_ && !remove_.valid())) {
    std::fprintf(stderr,
                 "vmm: warning: apparmor: the VM's profiles stay loaded; remove them with "
                 "apparmor_parser --remove %s\n",
                 file_.c_str());
    return;
  }
  if (!remove_.valid()) (void)RunAppArmorParser({"--remove", file_});
  unlink(file_.c_str());
}

}  // namespace vmm
