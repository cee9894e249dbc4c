// The processes of a running VM, seen from outside as an operator would: the VM process
// (`vmm-vcpu`) and each `vmm-device` child of `vmm run --disk ... --rng` are confined
// (/proc: seccomp filter, no_new_privs, no capabilities, their own namespaces, only their
// fds), a device process that dies stops the VM with a message naming it, and none
// outlives the VM. Needs /dev/kvm (scripts/test.sh
// runs these under nested KVM where it is missing).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "sandbox/confine.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"
#include "tests/unit/common/expect_text.h"

namespace vmm::testing {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

#define REQUIRE_KVM() \
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)"

std::string HaltingGuest() {
  ElfSpec spec;
  spec.code = {0xFA, 0xF4, 0xEB, 0xFD};  // cli; hlt; jmp back
  return WriteTempFile("halt-dev.elf", MakePvhElf(spec));
}

std::string Image() {
  std::string path = WriteTempFile("dev-disk.img", {});
  EXPECT_EQ(truncate(path.c_str(), 1 << 20), 0);
  return path;
}

std::vector<pid_t> Children(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  pid_t c;
  while (f >> c) out.push_back(c);
  return out;
}

std::map<std::string, std::string> Status(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::map<std::string, std::string> m;
  std::string line;
  while (std::getline(f, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    m[line.substr(0, colon)] = v;
  }
  return m;
}

std::string Link(const std::string& path) {
  char buf[512];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

struct ChildReport {
  pid_t pid;
  std::map<std::string, std::string> status;
  std::vector<std::string> shared_ns;  // namespaces the child shares with us
  std::vector<std::string> fds;        // fd targets
};

ChildReport Inspect(pid_t child) {
  ChildReport r{child, Status(child), {}, {}};
  for (const char* ns : {"pid", "net", "mnt", "ipc", "uts"}) {
    std::string mine = Link(std::string("/proc/self/ns/") + ns);
    if (Link("/proc/" + std::to_string(child) + "/ns/" + ns) == mine) r.shared_ns.push_back(ns);
  }
  for (int fd = 0; fd < 1024; ++fd) {
    std::string t = Link("/proc/" + std::to_string(child) + "/fd/" + std::to_string(fd));
    if (!t.empty()) r.fds.push_back(std::to_string(fd) + "->" + t);
  }
  return r;
}

// fd targets a role may hold beyond stdio: in every role its event loop's epoll instance;
// the vhost-user sessions and (blk) the image for a device process; for the vTPM process
// its swtpm channels only (an ephemeral vTPM has no state directory); for the VM process
// its KVM VM and vCPU fds, its guest RAM memfd, eventfds (kicks, calls, stop requests),
// the signalfd for forwarded signals, the sessions, and nothing that names a host file.
bool Expected(const std::string& comm, const std::string& target, const std::string& image) {
  auto has = [&](const char* prefix) { return target.rfind(prefix, 0) == 0; };
  if (has("socket:")) return true;
  if (target == "anon_inode:[eventpoll]") return true;  // its event loop (vmm/common)
  if (comm == "vmm-device") return target == image;
  if (comm == "vmm-vtpm") return false;
  return has("anon_inode:kvm-vm") || has("anon_inode:kvm-vcpu") || has("anon_inode:[eventfd]") ||
         has("anon_inode:[signalfd]") || has("/memfd:vmm-guest-ram");  // its own guest RAM
}

TEST(DeviceProcessKvm, EveryRoleRunsConfinedAndNoneOutlivesTheVm) {
  REQUIRE_KVM();
  std::string image = Image();
  std::vector<ChildReport> reports;
  ProcessResult r = RunProcess({BinDir() + "/vmm", "run", "--kernel", HaltingGuest(), "--disk",
                                "path=" + image, "--rng", "--tpm", "ephemeral"},
                               60, SIGTERM, 2500, [&](pid_t vmm) {
                                 for (pid_t c : Children(vmm)) reports.push_back(Inspect(c));
                               });
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  std::map<std::string, int> roles;
  for (const ChildReport& c : reports) ++roles[c.status.at("Name")];
  EXPECT_EQ(roles["vmm-device"], 2) << "one process for the disk, one for the rng\n" << r.err;
  EXPECT_EQ(roles["vmm-vcpu"], 1) << "the VM process\n" << r.err;
  EXPECT_EQ(roles["vmm-vtpm"], 1) << "the vTPM process\n" << r.err;
  for (const ChildReport& c : reports) {
    const std::string comm = c.status.at("Name");
    SCOPED_TRACE(comm + " " + std::to_string(c.pid));
    EXPECT_EQ(c.status.at("Seccomp"), "2");
    EXPECT_EQ(c.status.at("NoNewPrivs"), "1");
    EXPECT_EQ(c.status.at("CapEff"), "0000000000000000");
    EXPECT_EQ(c.status.at("CapBnd"), "0000000000000000");
    EXPECT_TRUE(c.shared_ns.empty()) << "shares namespace " << c.shared_ns.front();
    for (const std::string& fd : c.fds) {
      int n = std::stoi(fd.substr(0, fd.find('-')));
      if (n <= 2) continue;  // stdio, as the operator gave it
      EXPECT_TRUE(Expected(comm, fd.substr(fd.find("->") + 2), image)) << "unexpected fd " << fd;
    }
    EXPECT_NE(kill(c.pid, 0), 0) << "still running after vmm exited";
  }
}

TEST(DeviceProcessKvm, ADeviceProcessThatDiesStopsTheVmNamingIt) {
  REQUIRE_KVM();
  std::vector<pid_t> children;
  ProcessResult r = RunProcess({BinDir() + "/vmm", "run", "--kernel", HaltingGuest(), "--rng"}, 60,
                               0, 2500, [&children](pid_t vmm) {
                                 children = Children(vmm);  // the VM process and the rng's
                                 for (pid_t c : children) {
                                   if (Status(c)["Name"] == "vmm-device") kill(c, SIGKILL);
                                 }
                               });
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(children.size(), 2u);
  for (pid_t c : children) EXPECT_NE(kill(c, 0), 0) << "process " << c << " left behind";
  ExpectContainsAll(r.err, {"device process rng0", "killed by SIGKILL"});
}

TEST(DeviceProcessKvm, TestGuestDrivesBlkAndRngServedByConfinedProcesses) {
  REQUIRE_KVM();
  std::string image = Image();
  ProcessResult r = RunVmm({"--kernel", BinDir() + "/testguest.elf", "--disk", "path=" + image,
                            "--rng", "--cmdline", "expect_virtio=blk,rng"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(r.out, {"check virtio: ok blk0", "rng1 64 bytes", "testguest: result PASS"});
  // The guest wrote sector 8 through the device process; the image holds it.
  std::ifstream f(image, std::ios::binary);
  f.seekg(8 * 512);
  std::string marker(20, '\0');
  f.read(marker.data(), 20);
  EXPECT_EQ(marker, "TESTGUEST-VIRTIO-BLK");
}

// --vsock: the guest reads its CID from the device's config space, the device process runs
// confined under its own role, and a host client asking for a port the guest does not listen
// on is hung up on (no "OK") while the VM runs on to its power-off.
TEST(DeviceProcessKvm, TestGuestReadsItsVsockCidAndAHostConnectIsRefused) {
  REQUIRE_KVM();
  char tmpl[] = "/tmp/vmm-vsock-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, sock = dir + "/v.sock";
  std::vector<ChildReport> reports;
  std::string reply = "(not read)";
  ssize_t got = -2;
  ProcessResult r = RunProcess(
      {BinDir() + "/vmm", "run", "--kernel", BinDir() + "/testguest.elf", "--vsock",
       "cid=5,socket=" + sock, "--cmdline", "expect_virtio=vsock expect_vsock_cid=5 linger=5"},
      60, 0, 2500, [&](pid_t vmm) {
        for (pid_t c : Children(vmm)) reports.push_back(Inspect(c));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock.c_str());
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
          const char req[] = "CONNECT 1234\n";
          EXPECT_EQ(write(fd, req, sizeof(req) - 1), static_cast<ssize_t>(sizeof(req) - 1));
          timeval tv{10, 0};
          setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
          char buf[64];
          got = read(fd, buf, sizeof(buf));
          reply = got > 0 ? std::string(buf, static_cast<size_t>(got)) : "";
        }
        close(fd);
      });
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(r.out, {"check virtio: ok vsock0 cid=5", "testguest: result PASS"});
  EXPECT_EQ(got, 0) << "the host client should be hung up on, got '" << reply << "'";
  bool seen = false;
  for (const ChildReport& c : reports) {
    if (c.status.at("Name") != "vmm-device") continue;
    seen = true;
    EXPECT_EQ(c.status.at("Seccomp"), "2");
    EXPECT_EQ(c.status.at("CapEff"), "0000000000000000");
    EXPECT_TRUE(c.shared_ns.empty()) << "shares namespace " << c.shared_ns.front();
  }
  EXPECT_TRUE(seen) << "no vmm-device process for the vsock\n" << r.err;
  ExpectContainsAll(r.err, {"device-vsock vsock0"});
  unlink(sock.c_str());
  rmdir(dir.c_str());
}

TEST(DeviceProcessKvm, TestGuestFailsOnAnotherVsockCid) {
  REQUIRE_KVM();
  char tmpl[] = "/tmp/vmm-vsock-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, sock = dir + "/v.sock";
  ProcessResult r =
      RunVmm({"--kernel", BinDir() + "/testguest.elf", "--vsock", "cid=6,socket=" + sock,
              "--cmdline", "expect_virtio=vsock expect_vsock_cid=5"});
  ExpectContainsAll(r.out, {"vsock0 cid=6 (want 5)", "testguest: result FAIL"});
  unlink(sock.c_str());
  rmdir(dir.c_str());
}

// The test guest's hostile mode sends malformed virtqueues and register writes to both
// devices (tests/guest/README.md, "virtio-hostile"): every case must be refused, the
// devices must work again after a reset, the VM must run to its power-off, and the image
// must hold only what the guest wrote on purpose.
TEST(DeviceProcessKvm, HostileGuestRunsToTheEndWithTheVmmAliveAndTheImageIntact) {
  REQUIRE_KVM();
  std::string image = Image();
  ProcessResult r = RunVmm({"--kernel", BinDir() + "/testguest.elf", "--disk", "path=" + image,
                            "--rng", "--cmdline", "expect_virtio=blk,rng hostile=virtio"},
                           120);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(r.out, {"check virtio-hostile: ok", "testguest: result PASS"});
  EXPECT_EQ(r.err.find("vmm: error"), std::string::npos) << r.err;
  // A ring the device process stopped comes back to the guest as DEVICE_NEEDS_RESET.
  EXPECT_EQ(r.out.find("NEEDS_RESET 0"), std::string::npos) << r.out;
  struct stat st {};
  ASSERT_EQ(stat(image.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20) << "the image never grows";
  std::ifstream f(image, std::ios::binary);
  std::string sectors(3 * 512, '\0');
  f.read(sectors.data(), static_cast<std::streamsize>(sectors.size()));
  EXPECT_EQ(sectors.substr(0, 512), std::string(512, '\0')) << "sector 0 untouched";
  EXPECT_EQ(sectors.substr(512, 25), "TESTGUEST-HOSTILE-SECTOR1");
  EXPECT_EQ(sectors.substr(1024, 512), std::string(512, '\0')) << "sector 2 untouched";
}

TEST(DeviceProcessCli, MissingDiskImageIsBadInput) {
  ProcessResult r = RunVmm({"--kernel", HaltingGuest(), "--disk", "path=/nonexistent/disk.img"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/disk.img"), std::string::npos) << r.err;
}

TEST(DeviceProcessCli, VsockRefusalsAreBadInput) {
  const std::string elf = HaltingGuest();
  char tmpl[] = "/tmp/vmm-vsock-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string file = WriteTempFile("not-a-socket", {});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cid=2,socket=" + dir + "/a", "cid 2 is reserved"},
      {"cid=4294967295,socket=" + dir + "/a", "cid 4294967295 is reserved"},
      {"cid=5,socket=relative.sock", "is not absolute"},
      {"cid=5,socket=" + dir + "/missing/a", "does not exist"},
      {"cid=5,socket=" + file, "exists and is not a socket"},
      {"socket=" + dir + "/a", "no guest CID"},
      {"cid=5", "no host socket path"},
      {"cid=5,socket=" + dir + "/a,port=1", "'port=1' is not cid=N or socket=PATH"},
  };
  for (const auto& [value, message] : cases) {
    ProcessResult r = RunVmm({"--kernel", elf, "--vsock", value, "--dry-run"});
    EXPECT_EQ(r.exit_code, 2) << value << "\n" << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << value << "\n" << r.err;
  }
  ProcessResult two = RunVmm({"--kernel", elf, "--vsock", "cid=5,socket=" + dir + "/a", "--vsock",
                              "cid=6,socket=" + dir + "/b", "--dry-run"});
  EXPECT_EQ(two.exit_code, 2) << two.err;
  ProcessResult ok =
      RunVmm({"--kernel", elf, "--vsock", "cid=5,socket=" + dir + "/a", "--rng", "--dry-run"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  ExpectContainsAll(ok.out, {"\"vsock\": \"cid=5,socket=" + dir + "/a\"",
                             "virtio-vsock: guest cid 5, host clients on " + dir + "/a",
                             "(vmm-device vsock), mmio 0xd0001000 gsi 17"});
  rmdir(dir.c_str());
}

TEST(DeviceProcessCli, DryRunListsTheDeviceProcesses) {
  ProcessResult r = RunVmm({"--kernel", HaltingGuest(), "--disk",
                            "path=" + Image() + ",readonly=on", "--rng", "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(
      r.out,
      {"virtio-blk0:", "(read-only), in its own process (vmm-device blk), mmio 0xd0000000 gsi 16",
       "virtio-rng: in its own process (vmm-device rng), mmio 0xd0001000 gsi 17"});
}

// A device process started as the manager starts it ends with status 0 once its front-end
// hangs up. In the sanitizer build this is where a plain exit() ran the leak checker under
// the role's filter and died by SIGSYS (sandbox::ExitConfined).
TEST(DeviceProcessCli, AConfinedDeviceEndsCleanlyWhenItsFrontEndHangsUp) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  sandbox::ConfineOptions o;
  o.role = "device-rng";
  o.keep_fds = {STDERR_FILENO, sv[1]};
  auto pid = sandbox::SpawnRole(o, BinDir() + "/vmm-device",
                                {"vmm-device", "rng", "--fd", std::to_string(sv[1])});
  close(sv[1]);
  ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
  close(sv[0]);  // the front-end hangs up before saying anything
  int status = 0;
  ASSERT_EQ(waitpid(*pid, &status, 0), *pid);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (WIFEXITED(status)) {
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
}

}  // namespace
}  // namespace vmm::testing
