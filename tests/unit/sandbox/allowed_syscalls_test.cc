// What a role needs still works under its filter. Each test runs in a fresh child
// (EXPECT_EXIT), loads the role's filter and exits 0 only if every call behaved.
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <thread>

#include "base/kvm_abi.h"
#include "base/unix_socket.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

using testing_util::Die;

std::atomic<int> g_signals{0};
void OnSignal(int) { g_signals.fetch_add(1); }

void Must(bool ok, const char* what) {
  if (!ok) Die(std::string(what) + ": " + std::strerror(errno));
}

// Descriptors made before the filter, as a role's keep list would be.
struct Fds {
  int pipe[2];
  int sock[2];
};

Fds MakeFds() {
  Fds f{};
  Must(pipe2(f.pipe, O_CLOEXEC) == 0, "pipe2");
  Must(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.sock) == 0, "socketpair");
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  Must(sigaction(SIGUSR1, &sa, nullptr) == 0, "sigaction");
  return f;
}

// The calls every role's base grants.
void ExerciseBase(const Fds& f) {
  char c = 'x';
  Must(write(f.pipe[1], &c, 1) == 1 && read(f.pipe[0], &c, 1) == 1, "pipe read/write");
  iovec iov{&c, 1};
  Must(writev(f.pipe[1], &iov, 1) == 1 && readv(f.pipe[0], &iov, 1) == 1, "readv/writev");

  void* small = std::malloc(64);
  void* big = std::malloc(8 << 20);  // above the mmap threshold
  Must(small && big, "malloc");
  big = std::realloc(big, 32 << 20);  // mremap
  Must(big != nullptr, "realloc");
  std::memset(big, 1, 32 << 20);
  std::free(big);
  std::free(small);
  void* m = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  Must(m != MAP_FAILED, "mmap RW");
  Must(mprotect(m, 4096, PROT_READ) == 0, "mprotect to read-only");
  Must(madvise(m, 8192, MADV_DONTNEED) == 0, "madvise DONTNEED");
  Must(munmap(m, 8192) == 0, "munmap");

  uint32_t word = 0;
  Must(syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, nullptr) >= 0, "futex wake");
  timespec ts{};
  Must(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) == 0, "clock_gettime syscall");
  timespec nap{0, 1000000};
  Must(nanosleep(&nap, nullptr) == 0, "nanosleep");

  int ep = epoll_create1(EPOLL_CLOEXEC);
  Must(ep >= 0, "epoll_create1");
  epoll_event ev{EPOLLOUT, {}};
  Must(epoll_ctl(ep, EPOLL_CTL_ADD, f.pipe[1], &ev) == 0, "epoll_ctl");
  Must(epoll_wait(ep, &ev, 1, 0) == 1, "epoll_wait");
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  Must(efd >= 0, "eventfd");
  uint64_t one = 1, got = 0;
  Must(write(efd, &one, 8) == 8 && read(efd, &got, 8) == 8 && got == 1, "eventfd kick");
  Must(close(efd) == 0 && close(ep) == 0, "close");

  int fl = fcntl(f.pipe[0], F_GETFL);
  Must(fl >= 0 && fcntl(f.pipe[0], F_SETFL, fl | O_NONBLOCK) == 0, "fcntl F_GETFL/F_SETFL");
  Must(fcntl(f.pipe[0], F_GETFD) >= 0, "fcntl F_GETFD");

  // A message carrying an fd, as vhost-user's SET_MEM_TABLE and swtpm's SET_DATAFD do.
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &f.pipe[0], sizeof(int));
  Must(sendmsg(f.sock[0], &msg, 0) == 1, "sendmsg with SCM_RIGHTS");
  Must(recvmsg(f.sock[1], &msg, MSG_CMSG_CLOEXEC) == 1, "recvmsg with SCM_RIGHTS");
  Must(send(f.sock[0], "y", 1, 0) == 1 && recv(f.sock[1], &c, 1, 0) == 1, "send/recv");

  sigset_t set;
  sigemptyset(&set);
  Must(sigprocmask(SIG_BLOCK, &set, nullptr) == 0, "sigprocmask");
  Must(syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1) == 0, "tgkill own thread");
  Must(g_signals.load() == 1, "signal handler ran and returned (rt_sigreturn)");
}

class SandboxAllowedSyscallTest : public testing::TestWithParam<std::string> {};

TEST_P(SandboxAllowedSyscallTest, BaseCallsWorkUnderTheFilter) {
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        Fds f = MakeFds();
        testing_util::ApplyRoleFilter(GetParam());
        ExerciseBase(f);
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(AllRoles, SandboxAllowedSyscallTest, testing::ValuesIn(RoleNames()),
                         testing_util::RoleTestName);

TEST(SandboxAllowedSyscalls, VcpuStartsKicksAndJoinsThreads) {
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        MakeFds();
        testing_util::ApplyRoleFilter("vcpu");
        Must(syscall(SYS_clone3, nullptr, 0) == -1 && errno == ENOSYS, "clone3 -> ENOSYS");
        std::atomic<bool> stop{false};
        std::thread t([&] {
          while (!stop.load()) {
            timespec nap{0, 1000000};
            nanosleep(&nap, nullptr);  // EINTR on the kick, like KVM_RUN
          }
        });
        Must(pthread_kill(t.native_handle(), SIGUSR1) == 0, "pthread_kill (vCPU kick)");
        while (g_signals.load() == 0) {
        }
        stop.store(true);
        t.join();
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// Makes a vCPU fd as vmm-vcpu does before confinement, applies `role`'s filter and runs
// `body` with it in a death-test child that must exit 0. Skips without /dev/kvm.
#define EXPECT_VCPU_IOCTLS_UNDER(role, body)                                 \
  do {                                                                       \
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);                          \
    if (kvm < 0) GTEST_SKIP() << "needs /dev/kvm: " << std::strerror(errno); \
    testing_util::UseThreadsafeDeathTests();                                 \
    EXPECT_EXIT(                                                             \
        {                                                                    \
          int vm = ioctl(kvm, KVM_CREATE_VM, 0);                             \
          int vcpu = vm < 0 ? -1 : ioctl(vm, KVM_CREATE_VCPU, 0);            \
          Must(vcpu >= 0, "KVM_CREATE_VM/VCPU before confinement");          \
          close(kvm);                                                        \
          testing_util::ApplyRoleFilter(role);                               \
          body(vcpu);                                                        \
          _exit(0);                                                          \
        },                                                                   \
        testing::ExitedWithCode(0), "");                                     \
    close(kvm);                                                              \
  } while (0)

TEST(SandboxAllowedSyscalls, VcpuRunsKvmIoctlsOnItsVcpuFd) {
  EXPECT_VCPU_IOCTLS_UNDER("vcpu", [](int vcpu) {
    kvm_regs regs{};
    kvm_sregs sregs{};
    Must(ioctl(vcpu, KVM_GET_REGS, &regs) == 0, "KVM_GET_REGS");
    Must(ioctl(vcpu, KVM_GET_SREGS, &sregs) == 0, "KVM_GET_SREGS");
  });
}

// Every ioctl the kvm_pvm module makes (vmm/vm/compat/kvm_pvm/pvm_compat.cc), under its role.
TEST(SandboxAllowedSyscalls, VcpuKvmPvmMakesTheModulesIoctls) {
  EXPECT_VCPU_IOCTLS_UNDER("vcpu-kvm-pvm", [](int vcpu) {
    kvm_regs regs{};
    kvm_sregs sregs{};
    static kvm_xsave xsave{};
    kvm_vcpu_events events{};
    Must(ioctl(vcpu, KVM_GET_REGS, &regs) == 0, "KVM_GET_REGS");
    Must(ioctl(vcpu, KVM_SET_REGS, &regs) == 0, "KVM_SET_REGS");
    Must(ioctl(vcpu, KVM_GET_SREGS, &sregs) == 0, "KVM_GET_SREGS");
    Must(ioctl(vcpu, KVM_SET_SREGS, &sregs) == 0, "KVM_SET_SREGS");
    Must(ioctl(vcpu, vmm::kvm::kKvmGetXsave, &xsave) == 0, "KVM_GET_XSAVE");
    Must(ioctl(vcpu, vmm::kvm::kKvmSetXsave, &xsave) == 0, "KVM_SET_XSAVE");
    Must(ioctl(vcpu, KVM_GET_VCPU_EVENTS, &events) == 0, "KVM_GET_VCPU_EVENTS");
    Must(ioctl(vcpu, KVM_SET_VCPU_EVENTS, &events) == 0, "KVM_SET_VCPU_EVENTS");
    struct {
      vmm::kvm::KvmMsrsHeader hdr;
      kvm_msr_entry e[2];
    } msrs{};
    msrs.hdr.nmsrs = 2;
    msrs.e[0].index = 0xC0000081;  // IA32_STAR
    msrs.e[1].index = 0xC0000084;  // IA32_FMASK
    Must(ioctl(vcpu, vmm::kvm::kKvmGetMsrs, &msrs) == 2, "KVM_GET_MSRS");
    msrs.hdr.nmsrs = 1;
    msrs.e[0].index = 0xC0000082;  // IA32_LSTAR
    msrs.e[0].data = 0xFFFFFFFF81000000;
    Must(ioctl(vcpu, vmm::kvm::kKvmSetMsrs, &msrs) == 1, "KVM_SET_MSRS");
    kvm_guest_debug debug{};
    debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
    debug.arch.debugreg[0] = 0xFFFFFFFF81000000;
    debug.arch.debugreg[7] = 0x601;
    Must(ioctl(vcpu, KVM_SET_GUEST_DEBUG, &debug) == 0, "KVM_SET_GUEST_DEBUG");
  });
}

TEST(SandboxAllowedSyscalls, BlkDeviceReadsWritesAndFlushesItsImage) {
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        int img = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        Must(img >= 0, "O_TMPFILE image");
        testing_util::ApplyRoleFilter("device-blk", testing_util::TestParams(img));
        char sector[512];
        std::memset(sector, 0xab, sizeof(sector));
        Must(pwrite(img, sector, sizeof(sector), 4096) == 512, "pwrite64 image");
        std::memset(sector, 0, sizeof(sector));
        Must(pread(img, sector, sizeof(sector), 4096) == 512 && sector[7] == '\xab',
             "pread64 image");
        Must(fdatasync(img) == 0, "fdatasync image");
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
}

TEST(SandboxAllowedSyscalls, RngDeviceGetsRandomBytes) {
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        testing_util::ApplyRoleFilter("device-rng");
        unsigned char buf[32];
        Must(getrandom(buf, sizeof(buf), 0) == sizeof(buf), "getrandom");
        Must(getrandom(buf, sizeof(buf), GRND_NONBLOCK) == sizeof(buf), "getrandom NONBLOCK");
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// What vmm/device/vsock/ does after confinement: accept a host client on a listener bound
// before, connect a unix stream socket to a host listener, pass on SHUTDOWN(SEND).
TEST(SandboxAllowedSyscalls, VsockDeviceAcceptsConnectsAndShutsDownWriting) {
  char tmpl[] = "/tmp/vmm-vsock-role-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/l";
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        auto listener = ListenUnix(path, 4);
        Must(listener.has_value(), "listen");
        testing_util::ApplyRoleFilter("device-vsock");
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        Must(s >= 0, "socket AF_UNIX");
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.c_str(), path.size());
        Must(connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0, "connect");
        int c = accept4(listener->get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        Must(c >= 0, "accept4");
        Must(shutdown(s, SHUT_WR) == 0, "shutdown SHUT_WR");
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
  std::filesystem::remove_all(tmpl);
}

TEST(SandboxAllowedSyscalls, VtpmReplacesItsStateAtomically) {
  char tmpl[] = "/tmp/vmm-vtpm-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir_path = tmpl;
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        int dir = open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        Must(dir >= 0, "open state dir");
        testing_util::ApplyRoleFilter("vtpm", testing_util::TestParams(-1, dir));
        int tmp = openat(dir, "permall.tmp", kVtpmStateWriteFlags, 0600);
        Must(tmp >= 0, "openat temp (write flags)");
        Must(pwrite(tmp, "state", 5, 0) == 5 && fsync(tmp) == 0 && close(tmp) == 0, "write+fsync");
        Must(renameat(dir, "permall.tmp", dir, "permall") == 0, "renameat within the dir");
        Must(fsync(dir) == 0, "fsync state dir");
        int rd = openat(dir, "permall", kVtpmStateReadFlags);
        char buf[8] = {};
        Must(rd >= 0 && read(rd, buf, sizeof(buf)) == 5 && std::memcmp(buf, "state", 5) == 0,
             "openat (read flags) and read back");
        Must(unlinkat(dir, "permall", 0) == 0, "unlinkat");
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
  rmdir(dir_path.c_str());
}

}  // namespace
}  // namespace vmm::sandbox
