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

#include "base/bytes.h"
#include "base/hex.h"
#include "sandbox/confine.h"
#include "vmm/manager/apparmor_profile.h"
#include "vmm/manager/device_processes.h"
#include "vmm/manager/mcs.h"
#include "vtpm/protocol/swtpm_client.h"
#include "vtpm/protocol/tpm_command.h"
#include "vtpm/state/sealed_state.h"

namespace vmm {
namespace {

// A TPM2_CreatePrimary of an RSA key can take seconds on a loaded host.
constexpr std::chrono::milliseconds kTpmTimeout(30000);
constexpr uint32_t kAllPcrs = (1u << vtpm::kPcrCount) - 1;
constexpr uint32_t kTpmCcHierarchyControl = 0x121;

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

Result<VtpmFiles> OpenVtpmFiles(const TpmConfig& tpm, uid_t owner, gid_t group) {
  VtpmFiles files;
  if (tpm.mode != TpmConfig::Mode::kPersistent) return files;
  if (mkdir(tpm.state_dir.c_str(), 0700) == 0) {
    if (owner != static_cast<uid_t>(-1) && chown(tpm.state_dir.c_str(), owner, group) != 0) {
      return Error(ErrorKind::kSystem,
                   "--tpm: giving the state directory '" + tpm.state_dir + "' to uid " +
                       std::to_string(owner),
                   errno);
    }
  } else if (errno != EEXIST) {
    return Error(ErrorKind::kInvalidArgument, "--tpm: state directory '" + tpm.state_dir + "'",
                 errno);
  }
  ASSIGN_OR_RETURN(files.state_dir, OpenStateDir(tpm.state_dir, "--tpm"));
  auto label = LabelVmDir(files.state_dir.get(), "vmm_vtpm_state_t", ChildSelinuxLevel());
  if (!label) return label.error().Wrap("--tpm: state directory '" + tpm.state_dir + "'");
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
  files.key_pipe = std::move(r);
  return files;
}

Result<VtpmProcess> StartVtpmProcess(const TpmConfig& tpm, const std::string& apparmor_vm_id) {
  if (!tpm.enabled()) return InvalidArgument("no vTPM configured");
  ASSIGN_OR_RETURN(VtpmFiles files, OpenVtpmFiles(tpm));
  return StartVtpmProcess(tpm, std::move(files), apparmor_vm_id);
}

Result<VtpmProcess> StartVtpmProcess(const TpmConfig& tpm, VtpmFiles files,
                                     const std::string& apparmor_vm_id) {
  if (!tpm.enabled()) return InvalidArgument("no vTPM configured");
  ASSIGN_OR_RETURN(std::string binary, RoleBinary("vmm-vtpm"));
  ASSIGN_OR_RETURN(auto control, SocketPair());
  ASSIGN_OR_RETURN(auto data, SocketPair());
  ASSIGN_OR_RETURN(auto guest, SocketPair());
  std::vector<std::string> argv = {"vmm-vtpm",
                                   "--control-fd",
                                   std::to_string(control.second.get()),
                                   "--data-fd",
                                   std::to_string(data.second.get()),
                                   "--guest-fd",
                                   std::to_string(guest.second.get())};
  sandbox::ConfineOptions o;
  o.role = "vtpm";
  if (!apparmor_vm_id.empty()) o.apparmor_profile = AppArmorProfileName(apparmor_vm_id, "vtpm");
  o.keep_fds = {STDERR_FILENO, control.second.get(), data.second.get(), guest.second.get()};
  UniqueFd state_dir = std::move(files.state_dir), key_pipe = std::move(files.key_pipe);
  if (tpm.mode == TpmConfig::Mode::kPersistent) {
    if (!state_dir.valid() || !key_pipe.valid()) {
      return InvalidArgument("--tpm: the state directory and key were not opened");
    }
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

namespace {

// TPM2_Startup(TPM_SU_CLEAR) at the data channel's locality.
Result<void> Startup(VtpmProcess& tpm) {
  std::vector<uint8_t> cmd = vtpm::TpmCommandBuilder(vtpm::kTpmStNoSessions, vtpm::kTpmCcStartup)
                                 .U16(0x0000)  // TPM_SU_CLEAR
                                 .Finish();
  ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, TpmCommand(tpm, cmd));
  return vtpm::TpmResponseOk(rsp, false, "TPM2_Startup at locality 3");
}

// True when exactly the measured-boot banks (SHA-256 and SHA-384, all 24 PCRs each) are
// allocated and every other bank is empty.
bool IsMeasuredBootAllocation(std::span<const vtpm::PcrBank> banks) {
  bool sha256 = false, sha384 = false;
  for (const vtpm::PcrBank& b : banks) {
    bool wanted = b.alg == vtpm::kTpmAlgSha256 || b.alg == vtpm::kTpmAlgSha384;
    if (b.pcrs != (wanted ? kAllPcrs : 0)) return false;
    sha256 |= b.alg == vtpm::kTpmAlgSha256;
    sha384 |= b.alg == vtpm::kTpmAlgSha384;
  }
  return sha256 && sha384;
}

}  // namespace

Result<std::vector<vtpm::PcrBank>> ReadPcrAllocation(VtpmProcess& tpm) {
  std::vector<uint8_t> cmd =
      vtpm::TpmCommandBuilder(vtpm::kTpmStNoSessions, vtpm::kTpmCcGetCapability)
          .U32(vtpm::kTpmCapPcrs)
          .U32(0)  // property
          .U32(1)  // propertyCount
          .Finish();
  ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, TpmCommand(tpm, cmd));
  ASSIGN_OR_RETURN(auto params,
                   vtpm::TpmResponseParameters(rsp, false, "TPM2_GetCapability(PCRS)"));
  vtpm::TpmReader r(params);
  auto more = r.U8();
  auto capability = r.U32();
  if (!more || !capability || *capability != vtpm::kTpmCapPcrs) {
    return Error(ErrorKind::kProtocol, "TPM2_GetCapability(PCRS): not a PCR capability answer");
  }
  auto banks = vtpm::ReadPcrSelection(r);
  if (!banks)
    return Error(ErrorKind::kProtocol, "TPM2_GetCapability(PCRS): malformed PCR selection");
  return *banks;
}

Result<void> StartupTpm(VtpmProcess& tpm) {
  vtpm::SwtpmClient control(tpm.control.get(), kTpmTimeout);
  RETURN_IF_ERROR(control.Init());
  RETURN_IF_ERROR(control.SetLocality(3));
  RETURN_IF_ERROR(Startup(tpm));
  // Measured boot's banks: SHA-256 and SHA-384, SHA-1 (and any other) off. A TPM that has
  // another allocation (a new one: libtpms starts with its own default) gets this one with
  // platform authority, which takes effect at the next TPM2_Startup; a persistent vTPM keeps it
  // in its state, so this happens once per state.
  ASSIGN_OR_RETURN(std::vector<vtpm::PcrBank> banks, ReadPcrAllocation(tpm));
  if (!IsMeasuredBootAllocation(banks)) {
    std::vector<vtpm::PcrBank> wanted;
    bool has256 = false, has384 = false;
    for (const vtpm::PcrBank& b : banks) {
      bool on = b.alg == vtpm::kTpmAlgSha256 || b.alg == vtpm::kTpmAlgSha384;
      has256 |= b.alg == vtpm::kTpmAlgSha256;
      has384 |= b.alg == vtpm::kTpmAlgSha384;
      wanted.push_back({b.alg, on ? kAllPcrs : 0u});
    }
    if (!has256 || !has384) {
      return Error(ErrorKind::kProtocol, "the vTPM implements no SHA-256 or no SHA-384 PCR bank");
    }
    vtpm::TpmCommandBuilder allocate(vtpm::kTpmStSessions, vtpm::kTpmCcPcrAllocate);
    allocate.U32(vtpm::kTpmRhPlatform).EmptyPasswordSession();
    vtpm::AppendPcrSelection(allocate, wanted);
    ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, TpmCommand(tpm, allocate.Finish()));
    ASSIGN_OR_RETURN(auto params, vtpm::TpmResponseParameters(rsp, true, "TPM2_PCR_Allocate"));
    vtpm::TpmReader r(params);
    auto success = r.U8();
    if (!success || *success != 1) {
      return Error(ErrorKind::kProtocol, "TPM2_PCR_Allocate: the vTPM refused SHA-256 + SHA-384");
    }
    RETURN_IF_ERROR(control.Init());
    RETURN_IF_ERROR(control.SetLocality(3));
    RETURN_IF_ERROR(Startup(tpm));
    ASSIGN_OR_RETURN(banks, ReadPcrAllocation(tpm));
    if (!IsMeasuredBootAllocation(banks)) {
      return Error(ErrorKind::kProtocol,
                   "the vTPM's PCR banks are not SHA-256 + SHA-384 after TPM2_PCR_Allocate");
    }
  }
  // As platform firmware does before it hands over to the OS: disable the platform
  // hierarchy (TPM2_HierarchyControl(TPM_RH_PLATFORM, TPM_RH_PLATFORM, NO), empty platform
  // auth as a password session), so the guest cannot use platform authority: not undefine
  // or rewrite the platform's NV indices (the EK certificates), not change its policies or
  // its PCR banks.
  vtpm::TpmCommandBuilder hierarchy(vtpm::kTpmStSessions, kTpmCcHierarchyControl);
  hierarchy.U32(vtpm::kTpmRhPlatform).EmptyPasswordSession().U32(vtpm::kTpmRhPlatform).U8(0);
  ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, TpmCommand(tpm, hierarchy.Finish()));
  return vtpm::TpmResponseOk(rsp, true, "TPM2_HierarchyControl (disable the platform hierarchy)");
}

Result<void> ExtendPcr(VtpmProcess& tpm, unsigned pcr, std::span<const PcrDigest> digests) {
  if (pcr >= vtpm::kPcrCount)
    return InvalidArgument("PCR " + std::to_string(pcr) + " does not exist");
  vtpm::TpmCommandBuilder extend(vtpm::kTpmStSessions, vtpm::kTpmCcPcrExtend);
  extend.U32(pcr).EmptyPasswordSession().U32(static_cast<uint32_t>(digests.size()));
  for (const PcrDigest& d : digests) {
    if (d.digest.size() != vtpm::TpmDigestSize(d.alg)) {
      return InvalidArgument("a " + vtpm::TpmAlgName(d.alg) + " digest of " +
                             std::to_string(d.digest.size()) + " bytes");
    }
    extend.U16(d.alg).Bytes(d.digest);
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, TpmCommand(tpm, extend.Finish()));
  return vtpm::TpmResponseOk(rsp, true, "TPM2_PCR_Extend(" + std::to_string(pcr) + ")");
}

Result<std::vector<uint8_t>> ReadPcr(VtpmProcess& tpm, uint16_t alg, unsigned pcr) {
  if (pcr >= vtpm::kPcrCount)
    return InvalidArgument("PCR " + std::to_string(pcr) + " does not exist");
  vtpm::TpmCommandBuilder read(vtpm::kTpmStNoSessions, vtpm::kTpmCcPcrRead);
  const vtpm::PcrBank bank{alg, 1u << pcr};
  vtpm::AppendPcrSelection(read, std::span(&bank, 1));
  ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, TpmCommand(tpm, read.Finish()));
  ASSIGN_OR_RETURN(auto params, vtpm::TpmResponseParameters(rsp, false, "TPM2_PCR_Read"));
  vtpm::TpmReader r(params);
  auto update_counter = r.U32();
  auto selection = vtpm::ReadPcrSelection(r);
  auto count = r.U32();
  if (!update_counter || !selection || !count)
    return Error(ErrorKind::kProtocol, "TPM2_PCR_Read: malformed answer");
  if (*count != 1 || selection->size() != 1 || (*selection)[0].pcrs != bank.pcrs) {
    return Error(ErrorKind::kProtocol, "TPM2_PCR_Read: no " + vtpm::TpmAlgName(alg) +
                                           " value for PCR " + std::to_string(pcr) +
                                           " (bank not allocated?)");
  }
  auto size = r.U16();
  if (!size || *size != vtpm::TpmDigestSize(alg))
    return Error(ErrorKind::kProtocol, "TPM2_PCR_Read: bad digest size");
  auto digest = r.Bytes(*size);
  if (!digest) return Error(ErrorKind::kProtocol, "TPM2_PCR_Read: short digest");
  return std::vector<uint8_t>(digest->begin(), digest->end());
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
  if (e.killed_after_grace)
    problems = "vTPM process did not exit after its channels closed; killed\n";
  if (!e.Succeeded()) problems += "vTPM process " + e.text + "\n";
  return problems;
}

}  // namespace vmm
