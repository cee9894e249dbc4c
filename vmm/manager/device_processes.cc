#include "vmm/manager/device_processes.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>

#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "sandbox/seccomp_audit.h"
#include "vmm/contract/layout.h"
#include "vmm/device/blk/blk.h"
#include "vmm/formats/virtio/features.h"
#include "vmm/manager/apparmor_profile.h"
#include "vmm/manager/child_process.h"
#include "vmm/manager/mcs.h"

namespace vmm {
Result<std::string> RoleBinary(const std::string& name) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return Error(ErrorKind::kSystem, "readlink /proc/self/exe", errno);
  std::string dir(self, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/') + 1);
  // The installed layout first (bin/vmm, libexec/vmm/vmm-vcpu: the relative path is fixed at
  // configure time, so a staged or relocated tree works too), then the build tree's bin/.
  const std::string installed = dir + VMM_ROLE_DIR_FROM_BINDIR "/" + name;
  if (access(installed.c_str(), X_OK) == 0) return installed;
  const std::string sibling = dir + name;
  if (access(sibling.c_str(), X_OK) == 0) return sibling;
  return Error(ErrorKind::kNotFound,
               "'" + name + "': neither '" + installed + "' nor '" + sibling + "' is executable",
               errno);
}

namespace {

Result<DeviceProcess> Spawn(const std::string& binary, DeviceProcess dev,
                            std::vector<std::string> args, UniqueFd image,
                            const std::string& apparmor_vm_id) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Error(ErrorKind::kSystem, "socketpair", errno);
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  const std::string role(dev.kind->role);
  sandbox::ConfineOptions o;
  o.role = role;
  o.keep_fds = {STDERR_FILENO, theirs.get()};
  if (!apparmor_vm_id.empty()) o.apparmor_profile = AppArmorProfileName(apparmor_vm_id, dev.name);
  std::vector<std::string> argv = {"vmm-device", std::string(dev.kind->name), "--fd",
                                   std::to_string(theirs.get())};
  if (image.valid()) {
    o.keep_fds.push_back(image.get());
    argv.push_back("--image-fd");
    argv.push_back(std::to_string(image.get()));
  }
  argv.insert(argv.end(), args.begin(), args.end());
  ASSIGN_OR_RETURN(ManagedChild child, SpawnManagedChild(o, binary, argv, role + " " + dev.name));
  dev.child = std::move(child);
  dev.sock = std::move(ours);
  return dev;
}

}  // namespace

std::vector<PlannedDevice> PlanDevices(const VmConfig& cfg) {
  std::vector<PlannedDevice> out;
  const DeviceKind& blk = GetDeviceKind(DeviceType::kBlk);
  for (size_t i = 0; i < cfg.disks.size(); ++i) {
    out.push_back({&blk, std::string(blk.name) + std::to_string(i), out.size(), &cfg.disks[i]});
  }
  if (cfg.rng) {
    const DeviceKind& rng = GetDeviceKind(DeviceType::kRng);
    out.push_back({&rng, std::string(rng.name) + "0", out.size(), nullptr});
  }
  if (cfg.vsock) {
    const DeviceKind& vsock = GetDeviceKind(DeviceType::kVsock);
    out.push_back({&vsock, std::string(vsock.name) + "0", out.size(), nullptr, &cfg.vsock.value()});
  }
  return out;
}

std::string DescribePlannedDevice(const PlannedDevice& dev) {
  std::string s =
      "virtio-" + (dev.kind->max_count == 1 ? std::string(dev.kind->name) : dev.name) + ": ";
  if (dev.disk != nullptr) s += dev.disk->path + (dev.disk->readonly ? " (read-only)" : "") + ", ";
  if (dev.vsock != nullptr) {
    s += "guest cid " + std::to_string(dev.vsock->cid) + ", host clients on " + dev.vsock->socket +
         ", guest ports at " + dev.vsock->socket + "_PORT, ";
  }
  char where[64];
  std::snprintf(where, sizeof(where), "mmio 0x%llx gsi %u",
                static_cast<unsigned long long>(x86::VirtioMmioBase(dev.slot)),
                x86::VirtioMmioGsi(dev.slot));
  return s + "in its own process (vmm-device " + std::string(dev.kind->name) + "), " + where;
}

DeviceSpec DeviceProcess::Spec() const {
  return {std::string(kind->name), name, kind->virtio_id, kind->config_size, sock.get()};
}

Result<void> CheckDiskImages(const VmConfig& cfg) {
  for (const DiskConfig& d : cfg.disks) {
    // O_NONBLOCK: a FIFO is refused below instead of holding us in open(2).
    UniqueFd fd(open(d.path.c_str(), (d.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) {
      return Error(ErrorKind::kInvalidArgument,
                   "--disk '" + d.path + "'" + (d.readonly ? "" : " (opened read-write)"), errno);
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
      return InvalidArgument("--disk '" + d.path + "': not a regular file or block device");
    }
  }
  return Ok();
}

Result<void> CheckVsockSocket(const VmConfig& cfg) {
  if (!cfg.vsock) return Ok();
  const std::string& path = cfg.vsock->socket;
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return InvalidArgument("--vsock: '" + path + "' exists and is not a socket");
    }
  } else if (errno != ENOENT) {
    return Error(ErrorKind::kInvalidArgument, "--vsock: socket path '" + path + "'", errno);
  }
  const std::string dir = path.substr(0, path.rfind('/') + 1);
  if (path.back() == '/' || stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument("--vsock: the directory of socket path '" + path +
                           "' does not exist (or it names no file)");
  }
  return Ok();
}

Result<std::vector<UniqueFd>> OpenDiskImages(const VmConfig& cfg) {
  std::vector<UniqueFd> images;
  for (const DiskConfig& d : cfg.disks) {
    images.emplace_back(open(d.path.c_str(), (d.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!images.back().valid()) {
      return Error(ErrorKind::kInvalidArgument, "--disk '" + d.path + "'", errno);
    }
    // A read-only image may be shared between VMs: level s0, which every pair dominates
    // (libvirt labels shareable read-only disks the same way).
    auto label =
        LabelVmFile(images.back().get(), "vmm_image_t", d.readonly ? "s0" : ChildSelinuxLevel());
    if (!label) return label.error().Wrap("--disk '" + d.path + "'");
  }
  return images;
}

Result<std::vector<DeviceProcess>> StartDeviceProcesses(const VmConfig& cfg,
                                                        const std::string& apparmor_vm_id) {
  ASSIGN_OR_RETURN(std::vector<UniqueFd> images, OpenDiskImages(cfg));
  return StartDeviceProcesses(cfg, std::move(images), apparmor_vm_id);
}

Result<std::vector<DeviceProcess>> StartDeviceProcesses(const VmConfig& cfg,
                                                        std::vector<UniqueFd> images,
                                                        const std::string& apparmor_vm_id) {
  std::vector<DeviceProcess> out;
  if (images.size() != cfg.disks.size()) return InvalidArgument("one image fd per disk needed");
  if (cfg.disks.empty() && !cfg.rng && !cfg.vsock) return out;
  ASSIGN_OR_RETURN(std::string binary, RoleBinary("vmm-device"));
  auto fail = [&out](Error e) {
    ReapDeviceProcesses(out, 0);
    return e;
  };
  for (const PlannedDevice& p : PlanDevices(cfg)) {
    DeviceProcess dev;
    dev.kind = p.kind;
    dev.name = p.name;
    UniqueFd image;
    std::vector<std::string> args;
    if (p.disk != nullptr) {
      const DiskConfig& d = *p.disk;
      image = std::move(images[static_cast<size_t>(p.disk - cfg.disks.data())]);
      args = {"--serial", dev.name};
      if (d.readonly) args.push_back("--readonly");
    }
    if (p.vsock != nullptr) {
      // The device process binds this listener itself, before it confines itself: the
      // manager's filter has no bind(2) (ARCHITECTURE.md §3, "Vsock").
      args = {"--guest-cid", std::to_string(p.vsock->cid), "--uds-path", p.vsock->socket};
    }
    auto spawned = Spawn(binary, std::move(dev), args, std::move(image), apparmor_vm_id);
    if (!spawned) return fail(spawned.error());
    out.push_back(std::move(spawned).value());
  }
  return out;
}

namespace {

// "device process blk0 (pid 12) ", while it has a pid.
std::string Head(const DeviceProcess& dev) {
  return "device process " + dev.name + " (pid " + std::to_string(dev.child.pid) + ") ";
}

}  // namespace

ChildExit ReapDeviceProcess(DeviceProcess& dev) {
  const std::string head = Head(dev);
  ChildExit e = dev.child.Reap();
  e.text = head + e.text;
  return e;
}

std::string ReapDeviceProcesses(std::vector<DeviceProcess>& devs, int grace_ms) {
  std::string problems;
  for (DeviceProcess& dev : devs) {
    dev.sock.reset();  // the session ends: the device process exits on EOF
  }
  for (DeviceProcess& dev : devs) {
    if (!dev.child.running()) continue;
    const std::string head = Head(dev);
    ChildExit e = dev.child.Stop(grace_ms);
    if (e.killed_after_grace) {
      problems += "device process " + dev.name + " did not exit after its session closed; killed\n";
    }
    if (!e.Succeeded()) problems += head + e.text + "\n";
  }
  return problems;
}

}  // namespace vmm
