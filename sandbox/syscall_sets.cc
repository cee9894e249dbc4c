// The named syscall sets of PolicyBuilder (Chromium's syscall_sets.cc, sandbox2's
// Allow* methods). A set grants what a role needs once it is confined: it already holds
// every fd it will use, so no set creates fds except eventfds and epoll instances.
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>

#include <cerrno>

#include "sandbox/kvm_ioctls.h"
#include "sandbox/policy.h"

namespace vmm::sandbox {
namespace {

// The kernel reads these parameters as 32-bit ints and ignores the upper half of the
// register, so a filter must too (or a caller's sign extension would be killed).
constexpr uint64_t kLow32 = 0xffffffffULL;

// glibc 2.36 pthread_create (sysdeps/unix/sysv/linux/createthread.c): a thread that shares
// memory, files, fs and signal handlers. fork() and namespace flags do not match.
constexpr uint64_t kThreadCloneFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
                                       CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS |
                                       CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;

const char* FcntlName(int cmd) {
  switch (cmd) {
    case F_DUPFD:
      return "F_DUPFD";
    case F_GETFD:
      return "F_GETFD";
    case F_SETFD:
      return "F_SETFD";
    case F_GETFL:
      return "F_GETFL";
    case F_SETFL:
      return "F_SETFL";
    case F_DUPFD_CLOEXEC:
      return "F_DUPFD_CLOEXEC";
    case F_GET_SEALS:
      return "F_GET_SEALS";
    default:
      return "";
  }
}

}  // namespace

PolicyBuilder& PolicyBuilder::AllowExit() {
  Allow("exit", "a thread returns from its start function");
  return Allow("exit_group", "the process ends (also _exit after an error)");
}

PolicyBuilder& PolicyBuilder::AllowReadWrite() {
  Allow("read", "fds it was handed: eventfds, sockets, pipes, its backend fd");
  Allow("write", "same fds; also error messages on stderr when kept");
  Allow("readv", "scatter reads on the same fds");
  return Allow("writev", "gather writes on the same fds");
}

PolicyBuilder& PolicyBuilder::AllowClose() {
  return Allow("close", "drop fds it no longer needs (a reset vring's old eventfds)");
}

PolicyBuilder& PolicyBuilder::AllowMemoryMapping() {
  Allow("brk", "malloc grows the heap");
  // Never executable: after confinement no new code may appear in the process, so a
  // compromised role cannot stage shellcode. The personality(READ_IMPLIES_EXEC) route
  // around this is closed because personality is in no policy.
  AllowIf("mmap", {ArgMaskedEq(2, PROT_EXEC, 0, "no PROT_EXEC")},
          "malloc arenas, thread stacks, guest RAM memfd; never executable");
  AllowIf("mprotect", {ArgMaskedEq(2, PROT_EXEC, 0, "no PROT_EXEC")},
          "guard pages and arena growth; never to executable");
  Allow("munmap", "free mappings");
  AllowIf("mremap", {ArgMaskedEq(3, ~static_cast<uint64_t>(MREMAP_MAYMOVE), 0, "no MREMAP_FIXED")},
          "realloc of large blocks; may move, may not land on a chosen address");
  AllowIf("madvise", {ArgMaskedEq(2, kLow32, MADV_DONTNEED, "MADV_DONTNEED")},
          "glibc returns freed heap and dead thread stacks");
  return AllowIf("madvise", {ArgMaskedEq(2, kLow32, MADV_FREE, "MADV_FREE")},
                 "lazy free of heap pages");
}

PolicyBuilder& PolicyBuilder::AllowFutex() {
  // Plain wait/wake are all glibc's mutexes, condvars and joins use. PI and requeue
  // operations stay out: they have the worst bug history (CVE-2014-3153, requeue_pi).
  constexpr uint64_t kCmdMask =
      kLow32 & ~static_cast<uint64_t>(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
  AllowIf("futex", {ArgMaskedEq(1, kCmdMask, FUTEX_WAIT, "FUTEX_WAIT")}, "mutex and join waits");
  AllowIf("futex", {ArgMaskedEq(1, kCmdMask, FUTEX_WAKE, "FUTEX_WAKE")}, "mutex unlock");
  AllowIf("futex", {ArgMaskedEq(1, kCmdMask, FUTEX_WAIT_BITSET, "FUTEX_WAIT_BITSET")},
          "condition variable and timed waits");
  return AllowIf("futex", {ArgMaskedEq(1, kCmdMask, FUTEX_WAKE_BITSET, "FUTEX_WAKE_BITSET")},
                 "condition variable signal");
}

PolicyBuilder& PolicyBuilder::AllowTime() {
  Allow("clock_gettime", "fallback when the vDSO cannot answer");
  Allow("gettimeofday", "fallback when the vDSO cannot answer");
  Allow("clock_nanosleep", "timed waits (std::this_thread::sleep_for)");
  return Allow("nanosleep", "timed waits (older callers)");
}

PolicyBuilder& PolicyBuilder::AllowSignals() {
  Allow("rt_sigreturn", "return from a signal handler (the vCPU kick)");
  Allow("rt_sigprocmask", "glibc masks signals around thread start; threads unblock the kick");
  Allow("rt_sigaction", "glibc's abort() resets SIGABRT; handlers themselves are set earlier");
  Allow("getpid", "pthread_kill and raise name their own process to tgkill");
  Allow("gettid", "same, for the calling thread");
  AllowIf("tgkill", {ArgEqParam(0, "self_pid")},
          "signal its own threads only (the vCPU kick, abort)");
  return Allow("restart_syscall", "the kernel resumes a sleep interrupted by a signal");
}

PolicyBuilder& PolicyBuilder::AllowThreads() {
  AllowIf("clone", {ArgEq(0, kThreadCloneFlags, "pthread_create flags")},
          "new threads only; fork and namespace flags do not match");
  ReturnErrno("clone3", ENOSYS,
              "its flags sit in memory a filter cannot read; glibc then falls back to clone");
  Allow("set_robust_list", "glibc registers each new thread's robust mutex list");
  return Allow("rseq", "glibc 2.35+ registers each new thread's restartable sequence area");
}

PolicyBuilder& PolicyBuilder::AllowEventfdAndPoll() {
  AllowIf("eventfd2",
          {ArgMaskedEq(1, kLow32 & ~static_cast<uint64_t>(EFD_CLOEXEC | EFD_NONBLOCK), 0,
                       "CLOEXEC|NONBLOCK only")},
          "kick and call eventfds for virtqueues (a counter, no other object)");
  AllowIf("epoll_create1", {ArgEq(0, EPOLL_CLOEXEC, "EPOLL_CLOEXEC")}, "its event loop");
  Allow("epoll_ctl", "watch fds it holds");
  Allow("epoll_wait", "wait in the event loop");
  // No poll/ppoll: every wait is on an epoll instance (base/event_loop.h).
  return Allow("epoll_pwait", "wait in the event loop (glibc's epoll_wait may use it)");
}

PolicyBuilder& PolicyBuilder::AllowSocketIo() {
  // No socket(), connect(), bind() or accept() in any set: a role talks only on the
  // connected sockets it was handed, and its network namespace is empty anyway.
  Allow("sendmsg", "vhost-user / swtpm messages, with SCM_RIGHTS fds, on sockets it holds");
  Allow("recvmsg", "same; receives the memory table memfd and vring eventfds");
  AllowIf("sendto", {ArgEq(4, 0, "no address")}, "send() on a connected socket");
  return Allow("recvfrom", "recv() on a connected socket");
}

PolicyBuilder& PolicyBuilder::AllowFcntl(std::initializer_list<int> commands) {
  for (int cmd : commands) {
    AllowIf("fcntl", {ArgMaskedEq(1, kLow32, static_cast<uint64_t>(cmd), FcntlName(cmd))},
            "flags of fds it holds (O_NONBLOCK, FD_CLOEXEC)");
  }
  return *this;
}

PolicyBuilder& PolicyBuilder::AllowKvmIoctl(unsigned long request, std::string_view reason) {
  std::string name(KvmIoctlName(request));
  return AllowIf("ioctl", {ArgMaskedEq(1, kLow32, request, name)}, reason);
}

PolicyBuilder& PolicyBuilder::AllowKvmIoctls(std::span<const unsigned long> requests) {
  for (unsigned long r : requests) AllowKvmIoctl(r, "a KVM request on the VM/vCPU fds it holds");
  return *this;
}

PolicyBuilder& PolicyBuilder::AllowSanitizerRuntime() {
  // Measured with strace under -fsanitize=address (GCC 12): what ASan's runtime calls on
  // its own once the process runs. Sanitizer builds are for tests, never for deployment.
  Allow("sigaltstack", "sanitizer build: ASan's per-thread alternate signal stack");
  Allow("sched_getaffinity", "sanitizer build: pthread_getattr_np, for a new thread's stack");
  AllowIf("madvise", {ArgMaskedEq(2, kLow32, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE")},
          "sanitizer build: ASan allocator regions");
  AllowIf("madvise", {ArgMaskedEq(2, kLow32, MADV_DONTDUMP, "MADV_DONTDUMP")},
          "sanitizer build: ASan allocator regions");
  return AllowRisky("pipe2", {ArgEq(1, 0, "no flags")},
                    "sanitizer build: IsAccessibleMemoryRange probes memory through a pipe");
}

PolicyBuilder& PolicyBuilder::AllowGetrandom() {
  return AllowIf(
      "getrandom",
      {ArgMaskedEq(2, kLow32 & ~static_cast<uint64_t>(GRND_NONBLOCK), 0, "0 or GRND_NONBLOCK")},
      "entropy from the kernel's CSPRNG");
}

}  // namespace vmm::sandbox
