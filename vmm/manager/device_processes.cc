#include "vmm/manager/device_processes.h"

#include "vmm/manager/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>

#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "sandbox/seccomp_audit.h"
#include "vmm/common/event_loop.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/features.h"

namespace vmm {
Result<std::string> SiblingBinary(const std::string& name) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return Error(ErrorKind::kSystem, "readlink /proc/self/exe", errno);
  std::string path(self, static_cast<size_t>(n));
  path = path.substr(0, path.rfind('/') + 1) + name;
  if (access(path.c_str(), X_OK) != 0) {
    return Error(ErrorKind::kNotFound, "'" + path + "' (installed beside vmm)", errno);
  }
  return path;
}

std::string DescribeExit(int pidfd, int* exit_code) {
  siginfo_t info{};
  if (waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) != 0) {
    return "ended (status unavailable)";
  }
  if (info.si_code == CLD_EXITED) {
    if (exit_code) *exit_code = info.si_status;
    return "exited with status " + std::to_string(info.si_status);
  }
  if (exit_code) *exit_code = -1;
  const char* name = sigabbrev_np(info.si_status);
  std::string s = std::string("was killed by SIG") + (name ? name : std::to_string(info.si_status));
  if (info.si_status == SIGSYS) {
    if (auto name = sandbox::SeccompKilledSyscall(info.si_pid)) {
      s += ": its seccomp filter denied " + *name;
    } else {
      s += ": a system call outside its seccomp filter (the audit log names it)";
    }
  }
  return s;
}

bool WaitForExit(int pidfd, sandbox::ChildLog& log, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto loop = EventLoop::Create();
  if (!loop) return false;
  bool exited = false;
  if (!loop->Add(pidfd, EPOLLIN, [&](uint32_t ev) { exited = (ev & EPOLLIN) != 0; })) return false;
  // At EOF the log closes its read end (only we held it, so it left epoll with it).
  const int log_fd = log.fd();
  if (log_fd >= 0 && !loop->Add(log_fd, EPOLLIN, [&](uint32_t) {
        log.Forward();
        if (log.at_eof()) loop->Remove(log_fd);
      })) {
    return false;
  }
  for (;;) {
    const long long left = std::clamp<long long>(
        std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now())
            .count(),
        0, INT_MAX);
    auto n = loop->RunOnce(static_cast<int>(left));
    if (!n) return false;
    if (exited) return true;
    // Nothing ready: the time is up, or a signal ended the wait early.
    if (*n == 0 && std::chrono::steady_clock::now() >= until) return false;
    if (left == 0) return false;
  }
}

namespace {

Result<DeviceProcess> Spawn(const std::string& binary, DeviceProcess dev,
                            std::vector<std::string> args, UniqueFd image) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Error(ErrorKind::kSystem, "socketpair", errno);
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  sandbox::ConfineOptions o;
  o.role = dev.role;
  o.keep_fds = {STDERR_FILENO, theirs.get()};
  std::vector<std::string> argv = {"vmm-device", dev.role.substr(7), "--fd",
                                   std::to_string(theirs.get())};
  if (image.valid()) {
    o.keep_fds.push_back(image.get());
    argv.push_back("--image-fd");
    argv.push_back(std::to_string(image.get()));
  }
  argv.insert(argv.end(), args.begin(), args.end());
  ASSIGN_OR_RETURN(ManagedChild child,
                   SpawnManagedChild(o, binary, argv, dev.role + " " + dev.name));
  dev.pid = child.pid;
  dev.pidfd = std::move(child.pidfd);
  dev.log = std::move(child.log);
  dev.sock = std::move(ours);
  return dev;
}

}  // namespace

Result<void> CheckDiskImages(const VmConfig& cfg) {
  for (const DiskConfig& d : cfg.disks) {
    // O_NONBLOCK: a FIFO is refused below instead of holding us in open(2).
    UniqueFd fd(open(d.path.c_str(), (d.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) {
      return Error(ErrorKind::kInvalidArgument,
                   "--disk '" + d.path + "'" + (d.readonly ? "" : " (opened read-write)"), errno);
    }
    struct stat st{};
    if (fstat(fd.get(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
      return InvalidArgument("--disk '" + d.path + "': not a regular file or block device");
    }
  }
  return Ok();
}

Result<std::vector<DeviceProcess>> StartDeviceProcesses(const VmConfig& cfg) {
  std::vector<DeviceProcess> out;
  if (cfg.disks.empty() && !cfg.rng) return out;
  ASSIGN_OR_RETURN(std::string binary, SiblingBinary("vmm-device"));
  auto fail = [&out](Error e) {
    ReapDeviceProcesses(out, 0);
    return e;
  };
  for (size_t i = 0; i < cfg.disks.size(); ++i) {
    const DiskConfig& d = cfg.disks[i];
    UniqueFd image(open(d.path.c_str(), (d.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!image.valid()) {
      return fail(Error(ErrorKind::kInvalidArgument, "--disk '" + d.path + "'", errno));
    }
    DeviceProcess dev;
    dev.name = "blk" + std::to_string(i);
    dev.role = "device-blk";
    dev.device_id = virtio::kVirtioIdBlock;
    dev.config_size = virtio::kBlkConfigSize;
    std::vector<std::string> args = {"--serial", dev.name};
    if (d.readonly) args.push_back("--readonly");
    auto spawned = Spawn(binary, std::move(dev), args, std::move(image));
    if (!spawned) return fail(spawned.error());
    out.push_back(std::move(spawned).value());
  }
  if (cfg.rng) {
    DeviceProcess dev;
    dev.name = "rng0";
    dev.role = "device-rng";
    dev.device_id = virtio::kVirtioIdEntropy;
    auto spawned = Spawn(binary, std::move(dev), {}, UniqueFd());
    if (!spawned) return fail(spawned.error());
    out.push_back(std::move(spawned).value());
  }
  return out;
}

std::string DescribeDeviceExit(DeviceProcess& dev, int* exit_code) {
  std::string head = "device process " + dev.name + " (pid " + std::to_string(dev.pid) + ")";
  if (dev.pid <= 0) return head + " already reaped";
  dev.pid = -1;
  std::string how = DescribeExit(dev.pidfd.get(), exit_code);
  dev.log.ForwardToEnd();  // its last lines come before the line that says how it ended
  return head + " " + how;
}

std::string ReapDeviceProcesses(std::vector<DeviceProcess>& devs, int grace_ms) {
  std::string problems;
  for (DeviceProcess& dev : devs) {
    dev.sock.reset();  // the session ends: the device process exits on EOF
  }
  for (DeviceProcess& dev : devs) {
    if (dev.pid <= 0) continue;
    if (!WaitForExit(dev.pidfd.get(), dev.log, grace_ms)) {
      kill(dev.pid, SIGKILL);
      problems += "device process " + dev.name + " did not exit after its session closed; killed\n";
    }
    std::string how = DescribeDeviceExit(dev);
    if (how.find("exited with status 0") == std::string::npos) problems += how + "\n";
  }
  return problems;
}

}  // namespace vmm
