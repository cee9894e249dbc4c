#include "vmm/manager/vtpm_process.h"

#include "vmm/manager/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "sandbox/confine.h"
#include "vmm/common/bytes.h"
#include "vmm/common/hex.h"
#include "vmm/manager/device_processes.h"
#include "vtpm/state/sealed_state.h"
#include "vtpm/swtpm/swtpm_client.h"

namespace vmm {
namespace {

// A TPM2_CreatePrimary of an RSA key can take seconds on a loaded host.
constexpr std::chrono::milliseconds kTpmTimeout(30000);

Result<std::pair<UniqueFd, UniqueFd>> SocketPair() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Error(ErrorKind::kSystem, "socketpair", errno);
  }
  return std::make_pair(UniqueFd(sv[0]), UniqueFd(sv[1]));
}

// "dir/name" -> an fd of "dir" and "name".
Result<std::pair<UniqueFd, std::string>> OpenParent(const std::string& path,
                                                    const std::string& what) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty()) return InvalidArgument(what + " '" + path + "' names a directory");
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Error(ErrorKind::kInvalidArgument, what + " '" + path + "'", errno);
  return std::make_pair(std::move(fd), name);
}

// The state directory itself (O_NOFOLLOW: not through a final symlink), checked on the fd.
Result<UniqueFd> OpenStateDir(std::string path, const std::string& flag) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();  // "dir/" follows a symlink
  const std::string what = flag + ": state directory '" + path + "'";
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    struct stat st {};
    if ((err == ELOOP || err == ENOTDIR) && lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      return InvalidArgument(what + " is a symbolic link; give the directory it points to");
    }
    return Error(ErrorKind::kInvalidArgument, what, err);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Error(ErrorKind::kSystem, "fstat " + what, errno);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return InvalidArgument(what + " has mode " + mode +
                           ": group or others may write it, and so replace the vTPM's state "
                           "files; chmod go-w it");
  }
  return fd;
}

}  // namespace

Result<void> CheckTpmPaths(const TpmConfig& tpm, const std::string& flag) {
  if (tpm.mode != TpmConfig::Mode::kPersistent) return Ok();
  struct stat st {};
  if (lstat(tpm.state_dir.c_str(), &st) == 0 || errno != ENOENT) {  // else: created 0700 later
    if (auto dir = OpenStateDir(tpm.state_dir, flag); !dir) return dir.error();
  }
  ASSIGN_OR_RETURN(auto key_parent, OpenParent(tpm.key_file, flag + ": key file"));
  auto key = vtpm::ReadKeyFile(key_parent.first.get(), key_parent.second);
  if (!key && key.error().kind() != ErrorKind::kNotFound) {  // else: created 0600 later
    return InvalidArgument(flag + ": key file '" + tpm.key_file + "': " + key.error().ToString());
  }
  return Ok();
}

Result<VtpmProcess> StartVtpmProcess(const TpmConfig& tpm) {
  if (!tpm.enabled()) return InvalidArgument("no vTPM configured");
  ASSIGN_OR_RETURN(std::string binary, SiblingBinary("vmm-vtpm"));
  ASSIGN_OR_RETURN(auto control, SocketPair());
  ASSIGN_OR_RETURN(auto data, SocketPair());
  ASSIGN_OR_RETURN(auto guest, SocketPair());
  std::vector<std::string> argv = {"vmm-vtpm",
                                   "--control-fd", std::to_string(control.second.get()),
                                   "--data-fd", std::to_string(data.second.get()),
                                   "--guest-fd", std::to_string(guest.second.get())};
  sandbox::ConfineOptions o;
  o.role = "vtpm";
  o.keep_fds = {STDERR_FILENO, control.second.get(), data.second.get(), guest.second.get()};
  UniqueFd state_dir, key_pipe;
  if (tpm.mode == TpmConfig::Mode::kPersistent) {
    if (mkdir(tpm.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error(ErrorKind::kInvalidArgument, "--tpm: state directory '" + tpm.state_dir + "'",
                   errno);
    }
    ASSIGN_OR_RETURN(state_dir, OpenStateDir(tpm.state_dir, "--tpm"));
    ASSIGN_OR_RETURN(auto key_parent, OpenParent(tpm.key_file, "--tpm: key file"));
    auto key = vtpm::LoadOrCreateKeyFile(key_parent.first.get(), key_parent.second);
    if (!key) {
      return Error(ErrorKind::kInvalidArgument,
                   "--tpm: key file '" + tpm.key_file + "': " + key.error().ToString());
    }
    // The key reaches the vTPM process through a pipe, never as a file it could open.
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return Error(ErrorKind::kSystem, "pipe2", errno);
    UniqueFd r(p[0]), w(p[1]);
    if (write(w.get(), key->bytes().data(), key->bytes().size()) !=
        static_cast<ssize_t>(key->bytes().size())) {
      return Error(ErrorKind::kSystem, "writing the vTPM key to its pipe", errno);
    }
    key_pipe = std::move(r);
    argv.insert(argv.end(), {"--state-dir-fd", std::to_string(state_dir.get()), "--key-fd",
                             std::to_string(key_pipe.get())});
    o.keep_fds.push_back(state_dir.get());
    o.keep_fds.push_back(key_pipe.get());
    o.landlock_file_dirs.push_back(state_dir.get());
  }
  ASSIGN_OR_RETURN(ManagedChild child, SpawnManagedChild(o, binary, argv, "vtpm"));
  VtpmProcess out;
  out.child = std::move(child);
  out.control = std::move(control.first);
  out.data = std::move(data.first);
  out.guest = std::move(guest.first);
  return out;
}

Result<std::vector<uint8_t>> TpmCommand(VtpmProcess& tpm, std::span<const uint8_t> command) {
  return vtpm::Transmit(tpm.data.get(), command, kTpmTimeout);
}

Result<void> StartupTpm(VtpmProcess& tpm) {
  vtpm::SwtpmClient control(tpm.control.get(), kTpmTimeout);
  RETURN_IF_ERROR(control.Init());
  RETURN_IF_ERROR(control.SetLocality(3));
  // TPM2_Startup(TPM_SU_CLEAR): tag NO_SESSIONS, size 12, TPM_CC_Startup, TPM_SU_CLEAR.
  const uint8_t startup[] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0x00, 0x00};
  ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, TpmCommand(tpm, startup));
  if (rsp.size() < 10) return Error(ErrorKind::kProtocol, "TPM2_Startup: short response");
  uint32_t rc = LoadBe<uint32_t>(rsp, 6).value_or(0);
  if (rc != 0) {
    return Error(ErrorKind::kProtocol, "TPM2_Startup at locality 3 failed: " + Hex(rc));
  }
  // As platform firmware does before it hands over to the OS: disable the platform
  // hierarchy (TPM2_HierarchyControl(TPM_RH_PLATFORM, TPM_RH_PLATFORM, NO), empty platform
  // auth as a password session), so the guest cannot use platform authority: not undefine
  // or rewrite the platform's NV indices (the EK certificates), not change its policies.
  const uint8_t hierarchy_control[] = {
      0x80, 0x02, 0, 0, 0, 32, 0, 0, 0x01, 0x21,  // TPM_ST_SESSIONS, 32 bytes, HierarchyControl
      0x40, 0, 0, 0x0C,                           // authHandle TPM_RH_PLATFORM
      0, 0, 0, 9,                                 // authorizationSize
      0x40, 0, 0, 0x09, 0, 0, 0x01, 0, 0,         // TPM_RS_PW, no nonce, continue, empty hmac
      0x40, 0, 0, 0x0C,                           // enable: TPM_RH_PLATFORM
      0x00};                                      // state: NO
  ASSIGN_OR_RETURN(rsp, TpmCommand(tpm, hierarchy_control));
  if (rsp.size() < 10) return Error(ErrorKind::kProtocol, "TPM2_HierarchyControl: short response");
  rc = LoadBe<uint32_t>(rsp, 6).value_or(0);
  if (rc != 0) {
    return Error(ErrorKind::kProtocol,
                 "TPM2_HierarchyControl (disable the platform hierarchy) failed: " + Hex(rc));
  }
  return Ok();
}

std::string StopVtpmProcess(VtpmProcess& tpm, int grace_ms) {
  tpm.guest.reset();
  tpm.data.reset();
  tpm.control.reset();
  if (!tpm.child.running()) {
    tpm.child.log.ForwardToEnd();
    return "";
  }
  std::string problems;
  ChildExit e = tpm.child.Stop(grace_ms);
  if (e.killed_after_grace) problems = "vTPM process did not exit after its channels closed; killed\n";
  if (!e.Succeeded()) problems += "vTPM process " + e.text + "\n";
  return problems;
}

}  // namespace vmm
