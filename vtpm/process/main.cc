// `vmm-vtpm`: one VM's TPM 2.0 (libtpms) in a confined process of its own, speaking swtpm's
// socket protocol (a control channel of tpm_ioctl.h commands and a data channel of raw TPM
// commands), so that our VMM, QEMU (-tpmdev emulator), Cloud Hypervisor (--tpm socket=) and
// tpm2-tools (-T swtpm:) can all use it.
//
//   vmm-vtpm --control-fd 3 --data-fd 4 --guest-fd 5 [--state-dir-fd 6 --key-fd 7]
//            (started by `vmm run --tpm ...`, already in its own namespaces)
//   vmm-vtpm --ctrl unix:/run/vm1/tpm.ctrl [--server unix:/run/vm1/tpm.data]
//            [--state DIR --key FILE]                                  (standalone)
//   vmm-vtpm --ctrl tcp:2322 --server tcp:2321 --state DIR --key FILE   (tpm2-tools swtpm TCTI)
//
// It confines itself (new namespaces, empty root, no capabilities, Landlock with file access
// only beneath the state directory, the vtpm seccomp role) before it reads a byte from any
// channel, and then creates the TPM: the sealed state is parsed inside the sandbox.
//
// Channels: with --control-fd/--data-fd the manager holds the platform's channels (INIT,
// SET_LOCALITY, state blobs, ...); when its control channel closes the process exits 0.
// --guest-fd is the VM process's data channel: data commands only, always at locality 0,
// whatever any control channel says. Standalone, the listeners are the platform's (one
// client at a time, as swtpm), and CMD_SHUTDOWN ends the process.
//
// State: without --state/--state-dir-fd the TPM lives in memory only (ephemeral). With it,
// permanent state is sealed (AES-256-GCM, vtpm/state) under the 32-byte key; the VM id
// bound into every state file is derived from the key, so a state file from another VM is
// refused by name. Exit status: 0 a normal end, 1 an error, 2 bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include "base/cli.h"

#include "base/unix_socket.h"
#include "base/version.h"
#include "sandbox/child_log.h"
#include "sandbox/confine.h"
#include "sandbox/roles.h"
#include "vtpm/engine/tpm_engine.h"
#include "vtpm/process/engine_service.h"
#include "vtpm/process/swtpm_server.h"
#include "vtpm/state/sealed_state.h"

namespace vmm::vtpm {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Flags {
  int control_fd = -1, data_fd = -1, guest_fd = -1, state_dir_fd = -1, key_fd = -1;
  std::string ctrl, server, state_dir, key_file;
};

int Fail(const Error& e) {
  std::fprintf(stderr, "vmm-vtpm: error: %s\n", e.ToString().c_str());
  return e.kind() == ErrorKind::kInvalidArgument ? kExitUsage : kExitFailed;
}

void Log(const std::string& line) { std::fprintf(stderr, "vmm-vtpm: %s\n", line.c_str()); }

// "unix:PATH" or "tcp:[HOST:]PORT" (HOST defaults to 127.0.0.1; only numeric IPv4).
Result<UniqueFd> Listen(const std::string& spec, const std::string& flag) {
  if (spec.rfind("unix:", 0) == 0) {
    auto fd = ListenUnix(spec.substr(5), 4, ErrorKind::kInvalidArgument);
    if (!fd) return fd.error().Wrap(flag);
    return fd;
  }
  if (spec.rfind("tcp:", 0) == 0) {
    std::string rest = spec.substr(4);
    std::string host = "127.0.0.1";
    size_t colon = rest.rfind(':');
    if (colon != std::string::npos) {
      host = rest.substr(0, colon);
      rest = rest.substr(colon + 1);
    }
    char* end = nullptr;
    unsigned long port = std::strtoul(rest.c_str(), &end, 10);
    if (rest.empty() || *end != '\0' || port == 0 || port > 65535) {
      return InvalidArgument(flag + ": '" + spec + "' is not tcp:[HOST:]PORT");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
      return InvalidArgument(flag + ": '" + host + "' is not a numeric IPv4 address");
    }
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return ErrnoError("socket");
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Error(ErrorKind::kInvalidArgument, flag + ": bind " + host + ":" + rest, errno);
    }
    if (listen(fd.get(), 4) != 0) return ErrnoError("listen");
    return fd;
  }
  return InvalidArgument(flag + ": '" + spec + "' is not unix:PATH or tcp:[HOST:]PORT");
}

Result<Key> ReadKeyFromPipe(int fd) {
  std::array<uint8_t, kKeySize> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error(ErrorKind::kInvalidArgument, "--key-fd: fewer than 32 key bytes");
    got += static_cast<size_t>(n);
  }
  Key key{std::span<const uint8_t, kKeySize>(bytes)};
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

// "dir/name" -> (fd of dir, name), for the key file of the standalone mode.
Result<Key> LoadKeyFile(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return Error(ErrorKind::kInvalidArgument, "--key: '" + path + "'", errno);
  auto key = LoadOrCreateKeyFile(dfd.get(), name);
  if (!key)
    return Error(ErrorKind::kInvalidArgument, "--key: '" + path + "': " + key.error().ToString());
  return key;
}

VmId VmIdFromKey(const Key& key) {
  return VmId::FromName(
      std::string_view(reinterpret_cast<const char*>(key.bytes().data()), key.bytes().size()));
}

// Everything after confinement: the state store, the engine, the server.
int Serve(const Flags& f, std::optional<Key> key, int state_dir, std::vector<UniqueFd> listeners,
          size_t max_channels) {
  std::unique_ptr<SealedStateStore> store;
  VmId vm_id = VmId::FromName("ephemeral");
  if (key) {
    vm_id = VmIdFromKey(*key);
    store = std::make_unique<SealedStateStore>(state_dir, *key, vm_id);
  } else {
    // Ephemeral: state blobs that leave the process are still sealed, under a key that
    // dies with it.
    auto random = Key::Random();
    if (!random) return Fail(random.error());
    key = std::move(random).value();
  }
  auto engine = TpmEngine::Create(store.get());
  if (!engine) return Fail(engine.error().Wrap("creating the TPM"));
  EngineService service(**engine, *key, vm_id);
  SwtpmServer server(service, Log, ServerOptions{.max_channels = max_channels});
  if (f.control_fd >= 0) {
    ChannelPolicy platform;
    platform.platform = true;
    platform.stop_when_closed = true;
    if (server.AddGroup(platform, UniqueFd(f.control_fd), UniqueFd(f.data_fd)) < 0) {
      return kExitFailed;
    }
  }
  if (f.guest_fd >= 0) {
    ChannelPolicy guest;  // data only, locality 0, no control channel
    if (server.AddGroup(guest, UniqueFd(), UniqueFd(f.guest_fd)) < 0) return kExitFailed;
  }
  if (!listeners.empty()) {
    ChannelPolicy platform;
    platform.platform = true;
    int group = server.AddGroup(platform, UniqueFd(), UniqueFd());
    server.AddListener(std::move(listeners[0]), group, /*control=*/true);
    if (listeners.size() > 1) server.AddListener(std::move(listeners[1]), group, /*control=*/false);
  }
  if (auto r = server.Run(); !r) return Fail(r.error());
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "vmm-vtpm: a TPM 2.0 (libtpms) in a confined process, speaking swtpm's socket protocol"};
  app.set_version_flag("--version", std::string("vmm-vtpm ") + VMM_VERSION);
  Flags f;
  app.add_option("--ctrl", f.ctrl,
                 "Standalone: listen for the control channel (QEMU -tpmdev emulator's chardev, "
                 "tpm2-tools' swtpm TCTI port+1)")
      ->type_name("unix:PATH|tcp:[HOST:]PORT");
  app.add_option("--server", f.server, "Standalone: listen for data channels (swtpm TCTI's port)")
      ->type_name("unix:PATH|tcp:[HOST:]PORT");
  app.add_option("--state", f.state_dir,
                 "Directory of the sealed state (created 0700 if missing); without it the TPM "
                 "is ephemeral")
      ->type_name("DIR");
  app.add_option(
         "--key", f.key_file,
         "The state's 32-byte AES-256-GCM key (created 0600 if missing); needed with --state")
      ->type_name("FILE");
  app.add_option("--control-fd", f.control_fd, "Started by vmm: the manager's control channel");
  app.add_option("--data-fd", f.data_fd, "Started by vmm: the manager's data channel");
  app.add_option("--guest-fd", f.guest_fd,
                 "Started by vmm: the VM process's data channel (locality 0)");
  app.add_option("--state-dir-fd", f.state_dir_fd, "Started by vmm: the state directory");
  app.add_option("--key-fd", f.key_fd, "Started by vmm: a pipe holding the 32-byte key");
  if (std::optional<int> done = ParseCommandLine(app, argc, argv, "vmm-vtpm")) return *done;
  const bool by_manager = f.control_fd >= 0 || f.data_fd >= 0 || f.guest_fd >= 0;
  const bool standalone = !f.ctrl.empty() || !f.server.empty();
  if (by_manager == standalone) {
    return Fail(InvalidArgument(
        "give either --ctrl (standalone) or --control-fd/--data-fd/--guest-fd (started by vmm)"));
  }
  if (by_manager && (f.control_fd < 0 || f.data_fd < 0)) {
    return Fail(InvalidArgument("--control-fd and --data-fd go together"));
  }
  if (standalone && f.ctrl.empty()) return Fail(InvalidArgument("--server needs --ctrl"));
  if (f.state_dir.empty() != f.key_file.empty() || (f.state_dir_fd < 0) != (f.key_fd < 0)) {
    return Fail(InvalidArgument("a persistent TPM needs both a state directory and a key"));
  }

  if (auto w = WarmUpCrypto(); !w) return Fail(w.error());
  std::optional<Key> key;
  UniqueFd state_dir;
  if (f.key_fd >= 0) {
    auto k = ReadKeyFromPipe(f.key_fd);
    close(f.key_fd);
    if (!k) return Fail(k.error());
    key = std::move(k).value();
    state_dir.reset(f.state_dir_fd);
  } else if (!f.key_file.empty()) {
    auto k = LoadKeyFile(f.key_file);
    if (!k) return Fail(k.error());
    key = std::move(k).value();
    if (mkdir(f.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Fail(Error(ErrorKind::kInvalidArgument, "--state '" + f.state_dir + "'", errno));
    }
    state_dir.reset(open(f.state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!state_dir.valid()) {
      return Fail(Error(ErrorKind::kInvalidArgument, "--state '" + f.state_dir + "'", errno));
    }
  }

  sandbox::ConfineOptions o;
  o.role = "vtpm";
  o.keep_fds = {STDERR_FILENO};
  for (int fd : {f.control_fd, f.data_fd, f.guest_fd}) {
    if (fd >= 0) o.keep_fds.push_back(fd);
  }
  if (state_dir.valid()) {
    o.keep_fds.push_back(state_dir.get());
    o.landlock_file_dirs.push_back(state_dir.get());
  }
  auto filter = sandbox::VtpmFilter(state_dir.valid() ? state_dir.get() : -1);
  if (!filter) return Fail(filter.error());
  o.policy = std::move(filter->policy);
  o.policy_params = std::move(filter->params);
  o.log = [](const std::string& note) { Log(note); };
  // Every channel is an fd: hold no more than the confined process's RLIMIT_NOFILE leaves
  // room for beside stderr, the state dir and the listeners (accept4 would fail EMFILE).
  auto nofile = sandbox::ConfinedRlimit("vtpm", RLIMIT_NOFILE);
  if (!nofile) return Fail(nofile.error());
  auto max_channels = [&](size_t listeners) {
    return SwtpmServer::MaxChannelsForFdLimit(*nofile, 1 + listeners + (state_dir.valid() ? 1 : 0));
  };

  if (by_manager) {
    // SpawnRole already made this process pid 1 of new namespaces.
    if (auto c = sandbox::Confine(o); !c) return Fail(c.error().Wrap("confinement"));
    // The TPM and its secrets are gone once Serve returns.
    sandbox::ExitConfined(Serve(f, std::move(key), state_dir.get(), {}, max_channels(0)));
  }

  std::vector<UniqueFd> listeners;
  auto ctrl = Listen(f.ctrl, "--ctrl");
  if (!ctrl) return Fail(ctrl.error());
  listeners.push_back(std::move(ctrl).value());
  if (!f.server.empty()) {
    auto server = Listen(f.server, "--server");
    if (!server) return Fail(server.error());
    listeners.push_back(std::move(server).value());
  }
  for (const UniqueFd& l : listeners) o.keep_fds.push_back(l.get());
  Log("listening on " + f.ctrl + (f.server.empty() ? "" : " and " + f.server) +
      (key ? ", state in " + f.state_dir : ", ephemeral state"));
  // The confined server's stderr is a pipe to this (unconfined) process, which copies its
  // lines to our stderr: its RLIMIT_FSIZE would otherwise apply to a regular file there.
  auto log = sandbox::ChildLog::Create("");
  if (!log) return Fail(log.error());
  o.stderr_fd = log->write_end();
  auto pid = sandbox::SpawnConfined(o, [&] {
    const size_t cap = max_channels(listeners.size());
    return Serve(f, key, state_dir.get(), std::move(listeners), cap);
  });
  log->CloseWriteEnd();
  log->ForwardToEnd(pid ? -1 : 1000);  // until the server ends
  if (!pid) return Fail(pid.error().Wrap("starting the confined server"));
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  Log(std::string("the confined server was killed by SIG") + sigabbrev_np(WTERMSIG(status)));
  return kExitFailed;
}

}  // namespace
}  // namespace vmm::vtpm

int main(int argc, char** argv) { return vmm::vtpm::Main(argc, argv); }
