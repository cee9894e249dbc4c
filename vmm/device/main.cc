// `vmm-device`: a virtio device in a confined process of its own, served over vhost-user.
//
//   vmm-device blk --socket /run/vm1/blk.sock --image disk.img     # standalone
//   vmm-device rng --fd 3                                          # started by the manager
//   vmm-device vsock --socket /run/vm1/vsock.sock --guest-cid 3 --uds-path /run/vm1/v.sock
//
// Standalone, it listens on the socket path, accepts one front-end (our vmm, QEMU's
// vhost-user-blk-pci, Cloud Hypervisor's --disk vhost_user=true), then confines a child
// process (new namespaces, empty root, no capabilities, Landlock, the role's seccomp
// filter) that serves the session; no byte from the front-end is read before that.
// With --fd, the manager has already cloned it into its namespaces (SpawnRole) and it
// confines itself before reading the fd. Exit status: 0 the front-end hung up; 1 the
// session failed (a protocol error, a host error, or the confined child was killed);
// 2 bad usage.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "base/cli.h"

#include "base/unix_socket.h"
#include "base/version.h"
#include "sandbox/child_log.h"
#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "vmm/contract/device_table.h"
#include "vmm/device/blk/block_backend.h"
#include "vmm/device/devices.h"

namespace vmm::device {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Flags {
  const DeviceKind* kind = nullptr;  // the subcommand's row of the device table
  std::string socket_path;
  int fd = -1;
  std::string image;
  int image_fd = -1;
  bool readonly = false;
  std::string serial;
  uint64_t guest_cid = 0;
  std::string uds_path;
};

int Fail(const Error& e) {
  std::fprintf(stderr, "vmm-device: error: %s\n", e.ToString().c_str());
  return e.kind() == ErrorKind::kInvalidArgument ? kExitUsage : kExitFailed;
}

// Binds, listens and accepts one connection. A stale socket file is replaced; any other
// file at the path is an error.
Result<UniqueFd> AcceptOne(const std::string& path) {
  auto listener = ListenUnix(path, 1);
  if (!listener) return listener.error().Wrap("--socket");
  std::fprintf(stderr, "vmm-device: listening on %s\n", path.c_str());
  UniqueFd conn = AcceptConnection(listener->get());
  if (!conn.valid()) return Error(ErrorKind::kSystem, "accept", errno);
  unlink(path.c_str());  // one front-end per process
  return conn;
}

// What the device holds, created before confinement (files can no longer be opened then).
struct Device {
  std::unique_ptr<virtio::FdBlockBackend> disk;
  std::optional<virtio::BlkDevice> blk;
  virtio::GetrandomEntropySource entropy;
  std::optional<virtio::RngDevice> rng;
  std::unique_ptr<vhost_user::VirtioDevice> vhost;
  int image_fd = -1;
  int listener_fd = -1;  // vsock: host clients connect here
  std::string bind_dir;  // vsock: the directory of --uds-path, bound into the sandbox
};

// vsock: the listener at --uds-path, bound now (no socket can be bound once confined), and
// the directory of the host's per-port listeners, which Confine binds at kBoundDirInside.
// Confined, the device reaches "<dir>/<name>_P" as "/uds/<name>_P".
Result<void> MakeVsock(const Flags& f, Device& d) {
  if (f.guest_cid < vsock::kMinGuestCid || f.guest_cid > vsock::kMaxGuestCid) {
    return InvalidArgument("--guest-cid must be between 3 and 4294967294");
  }
  if (f.uds_path.empty()) return InvalidArgument("vsock needs --uds-path PATH");
  std::filesystem::path path = std::filesystem::absolute(f.uds_path).lexically_normal();
  const std::string name = path.filename().string();
  if (name.empty()) return InvalidArgument("--uds-path '" + f.uds_path + "' names no file");
  ASSIGN_OR_RETURN(UniqueFd listener, ListenUnix(path.string(), 16, ErrorKind::kInvalidArgument));
  if (fcntl(listener.get(), F_SETFL, O_NONBLOCK) != 0) return ErrnoError("--uds-path O_NONBLOCK");
  std::fprintf(stderr, "vmm-device: vsock: host clients on %s; guest ports at %s_PORT\n",
               path.c_str(), path.c_str());
  d.bind_dir = path.parent_path().string();
  d.listener_fd = listener.get();
  vsock::VsockDeviceOptions o;
  o.engine.guest_cid = f.guest_cid;
  o.connect_prefix = std::string(sandbox::kBoundDirInside) + "/" + name + "_";
  d.vhost = std::make_unique<vsock::VsockDevice>(std::move(o), std::move(listener));
  return Ok();
}

Result<void> MakeBlk(const Flags& f, Device& d) {
  UniqueFd image;
  if (f.image_fd >= 0) {
    image.reset(f.image_fd);
  } else if (!f.image.empty()) {
    image.reset(open(f.image.c_str(), (f.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!image.valid())
      return Error(ErrorKind::kInvalidArgument, "--image '" + f.image + "'", errno);
  } else {
    return InvalidArgument("blk needs --image PATH or --image-fd N");
  }
  d.image_fd = image.get();
  ASSIGN_OR_RETURN(d.disk, virtio::FdBlockBackend::Create(std::move(image), f.readonly));
  virtio::BlkOptions opts;
  opts.serial = f.serial;
  ASSIGN_OR_RETURN(virtio::BlkDevice blk, virtio::BlkDevice::Create(*d.disk, opts));
  d.blk.emplace(std::move(blk));
  d.vhost = std::make_unique<BlkVhostDevice>(*d.blk);
  return Ok();
}

Result<std::unique_ptr<Device>> MakeDevice(const Flags& f) {
  auto d = std::make_unique<Device>();
  switch (f.kind->type) {
    case DeviceType::kBlk:
      RETURN_IF_ERROR(MakeBlk(f, *d));
      break;
    case DeviceType::kRng:
      d->rng.emplace(d->entropy);
      d->vhost = std::make_unique<RngVhostDevice>(*d->rng);
      break;
    case DeviceType::kVsock:
      RETURN_IF_ERROR(MakeVsock(f, *d));
      break;
  }
  return d;
}

sandbox::ConfineOptions Confinement(const Flags& f, const Device& d, int sock) {
  sandbox::ConfineOptions o;
  o.role = std::string(f.kind->role);
  o.keep_fds = {STDERR_FILENO, sock};
  if (d.image_fd >= 0) {
    o.keep_fds.push_back(d.image_fd);
    o.policy_params[std::string(sandbox::kParamImageFd)] = static_cast<uint64_t>(d.image_fd);
  }
  if (d.listener_fd >= 0) o.keep_fds.push_back(d.listener_fd);
  o.bind_dir = d.bind_dir;
  o.log = [](const std::string& note) { std::fprintf(stderr, "vmm-device: %s\n", note.c_str()); };
  return o;
}

int Serve(Device& d, int sock) {
  vhost_user::Backend backend(*d.vhost, sock);
  auto r = backend.Run();
  if (!r) return Fail(r.error());
  return 0;
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  int sig = WTERMSIG(status);
  const char* name = sigabbrev_np(sig);
  std::string s = std::string("killed by SIG") + (name ? name : std::to_string(sig).c_str());
  if (sig == SIGSYS) s += " (a system call outside its seccomp filter; see the audit log)";
  return s;
}

int Run(const Flags& f) {
  if ((f.fd >= 0) == !f.socket_path.empty()) {
    return Fail(InvalidArgument("give exactly one of --socket PATH and --fd N"));
  }
  if (!f.kind->has_image && (!f.image.empty() || f.image_fd >= 0 || f.readonly)) {
    return Fail(InvalidArgument("--image, --image-fd and --readonly are for blk"));
  }
  auto dev = MakeDevice(f);
  if (!dev) return Fail(dev.error());

  if (f.fd >= 0) {  // started by the manager: we are pid 1 of our namespaces
    auto confined = sandbox::Confine(Confinement(f, **dev, f.fd));
    if (!confined) return Fail(confined.error().Wrap("confinement"));
    sandbox::ExitConfined(Serve(**dev, f.fd));
  }
  auto conn = AcceptOne(f.socket_path);
  if (!conn) return Fail(conn.error());
  int sock = conn->get();
  // The confined child's stderr is a pipe to this (unconfined) process, which copies its
  // lines to our stderr: its RLIMIT_FSIZE would otherwise apply to a regular file there.
  auto log = sandbox::ChildLog::Create("");
  if (!log) return Fail(log.error());
  sandbox::ConfineOptions o = Confinement(f, **dev, sock);
  o.stderr_fd = log->write_end();
  auto pid = sandbox::SpawnConfined(o, [&] { return Serve(**dev, sock); });
  log->CloseWriteEnd();
  conn->reset();                       // the child holds the session now
  log->ForwardToEnd(pid ? -1 : 1000);  // until the child ends
  if (!pid) return Fail(pid.error().Wrap("confinement"));
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  std::fprintf(stderr, "vmm-device: the confined %s process ended: %s\n",
               std::string(f.kind->name).c_str(), DescribeStatus(status).c_str());
  return kExitFailed;
}

int Main(int argc, char** argv) {
  CLI::App app{"vmm-device: a virtio device as a confined vhost-user back-end"};
  app.set_version_flag("--version", std::string("vmm-device ") + VMM_VERSION);
  app.require_subcommand(1);
  app.footer("Exit status: 0 the front-end hung up; 1 the session failed; 2 bad usage.");
  Flags f;
  auto common = [&f](CLI::App* c) {
    c->add_option("--socket", f.socket_path,
                  "Listen on this Unix socket path and serve the first front-end that connects")
        ->type_name("PATH");
    c->add_option("--fd", f.fd, "Serve the connected socket already open as this fd (the manager)")
        ->type_name("N");
  };
  // One subcommand per row of the device table (vmm/contract/device_table.h).
  std::vector<std::pair<CLI::App*, const DeviceKind*>> subcommands;
  for (const DeviceKind& kind : kDeviceKinds) {
    CLI::App* sub = app.add_subcommand(std::string(kind.name), std::string(kind.summary));
    common(sub);
    if (kind.type == DeviceType::kBlk) {
      sub->add_option("--image", f.image, "Disk image (raw)")->type_name("PATH");
      sub->add_option("--image-fd", f.image_fd, "Disk image already open as this fd")
          ->type_name("N");
      sub->add_flag("--readonly", f.readonly, "Offer VIRTIO_BLK_F_RO and refuse writes");
      sub->add_option("--serial", f.serial, "GET_ID string (at most 20 bytes)")->type_name("ID");
    }
    if (kind.type == DeviceType::kVsock) {
      sub->add_option("--guest-cid", f.guest_cid, "The guest's CID (3 to 4294967294)")
          ->type_name("N")
          ->required();
      sub->add_option("--uds-path", f.uds_path,
                      "Host clients connect here and send 'CONNECT <port>\\n'; a guest's "
                      "connection to port P goes to the listener at PATH_P")
          ->type_name("PATH")
          ->required();
    }
    subcommands.emplace_back(sub, &kind);
  }
  if (std::optional<int> done = ParseCommandLine(app, argc, argv, "vmm-device")) return *done;
  for (const auto& [sub, kind] : subcommands) {
    if (sub->parsed()) f.kind = kind;
  }
  if (f.kind == nullptr) return kExitUsage;  // require_subcommand(1) saw to it
  return Run(f);
}

}  // namespace
}  // namespace vmm::device

int main(int argc, char** argv) { return vmm::device::Main(argc, argv); }
