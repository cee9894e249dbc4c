#include "sandbox/roles.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>

#include "sandbox/kvm_ioctls.h"

namespace vmm::sandbox {
namespace {

constexpr rlim_t kMiB = 1024 * 1024;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerBuild = true;  // VMM_SANITIZE=ON (build-asan/)
#else
constexpr bool kSanitizerBuild = false;
#endif

// Every role: exit, I/O on the fds it holds, memory, locks, time, signals, event loop.
PolicyBuilder Base(std::string name) {
  PolicyBuilder b(std::move(name));
  b.AllowExit()
      .AllowReadWrite()
      .AllowClose()
      .AllowMemoryMapping()
      .AllowFutex()
      .AllowTime()
      .AllowSignals()
      .AllowEventfdAndPoll()
      .AllowFcntl({F_GETFL, F_SETFL, F_GETFD, F_SETFD});
  if (kSanitizerBuild) b.AllowSanitizerRuntime();
  return b;
}

PolicyBuilder Vcpu(std::string name = "vcpu") {
  PolicyBuilder b = Base(std::move(name));
  b.AllowThreads()      // one thread per vCPU plus the control loop
      .AllowSocketIo()  // vhost-user front end to device processes, CRB to the vtpm
      .AllowKvmIoctl(KVM_RUN, "enter the guest")
      .AllowKvmIoctl(KVM_GET_REGS, "error reports and --profile samples: RIP and the GPRs")
      .AllowKvmIoctl(KVM_GET_SREGS, "error reports: CPL, mode and control registers")
      .AllowKvmIoctl(KVM_IRQ_LINE, "UART and ACPI PM interrupts into the in-kernel IOAPIC")
      .AllowKvmIoctl(KVM_IOEVENTFD, "bind a virtqueue's kick eventfd when the driver activates it")
      .AllowKvmIoctl(KVM_IRQFD, "bind a virtqueue's call eventfd to its GSI");
  b.AllowIf("signalfd4", {ArgEq(3, SFD_CLOEXEC | SFD_NONBLOCK, "SFD_CLOEXEC|SFD_NONBLOCK")},
            "SIGINT/SIGTERM forwarded by the manager, read by the control loop");
  // Not here, on purpose: KVM_SET_USER_MEMORY_REGION (guest memory layout), KVM_SET_CPUID2
  // (guest CPU model), KVM_CREATE_VCPU, KVM_SET_GSI_ROUTING, KVM_SET_TSS_ADDR: all set up
  // before confinement and measured into PCR 1; a compromised vcpu process may not change
  // them. No /dev/kvm system ioctls either: the process no longer holds /dev/kvm. No
  // register writes: nothing outside the kvm_pvm module changes guest state at run time.
  return b;
}

// The VM process with the kvm_pvm compatibility module on (vmm/vm/compat/kvm_pvm/): exactly the
// vCPU ioctls the module makes, each where it makes it.
PolicyBuilder VcpuKvmPvm() {
  PolicyBuilder b = Vcpu(std::string(kVcpuKvmPvmRole));
  b.AllowKvmIoctl(KVM_SET_REGS, "completing an instruction: GPRs, RIP, RFLAGS (and RF at LSTAR)")
      .AllowKvmIoctl(KVM_SET_SREGS, "CR2 of an injected #PF; CS/SS of the SYSCALL fix-up")
      .AllowKvmIoctl(kvm::kKvmGetXsave, "MXCSR and the x87 status for ldmxcsr/stmxcsr and fwait")
      .AllowKvmIoctl(kvm::kKvmSetXsave, "MXCSR written by a completed ldmxcsr")
      .AllowKvmIoctl(kvm::kKvmGetMsrs, "IA32_STAR and IA32_FMASK for the SYSCALL fix-up")
      .AllowKvmIoctl(kvm::kKvmSetMsrs, "the guest's IA32_LSTAR write, caught by the MSR filter")
      .AllowKvmIoctl(KVM_GET_VCPU_EVENTS, "a #UD KVM queued for an instruction we complete")
      .AllowKvmIoctl(KVM_SET_VCPU_EVENTS,
                     "drop that #UD; inject #BP, #PF, #GP, #DB as the CPU would")
      .AllowKvmIoctl(KVM_SET_GUEST_DEBUG, "the instruction breakpoint at the guest's LSTAR");
  return b;
}

PolicyBuilder Device(std::string name) {
  PolicyBuilder b = Base(std::move(name));
  // A vhost-user backend: messages (with the guest RAM memfd and vring eventfds) on its
  // socket, guest RAM mapped from that memfd, kicks and calls on eventfds. One thread, one
  // event loop: no clone. No ioctl at all (no KVM, no tap yet).
  b.AllowSocketIo()
      // Before mapping guest RAM the back-end checks the memfd is sealed against shrinking
      // and covers the region, so a peer cannot turn a guest buffer into SIGBUS.
      .AllowFcntl({F_GET_SEALS})
      .AllowIf("lseek", {ArgEq(2, SEEK_END, "SEEK_END")}, "size of a guest RAM memfd");
  return b;
}

PolicyBuilder DeviceBlk() {
  PolicyBuilder b = Device("device-blk");
  const std::string fd(kParamImageFd);
  b.AllowIf("pread64", {ArgEqParam(0, fd)}, "virtio-blk IN requests, from its image fd only")
      .AllowIf("pwrite64", {ArgEqParam(0, fd)}, "virtio-blk OUT requests, to its image fd only")
      .AllowIf("fdatasync", {ArgEqParam(0, fd)}, "virtio-blk FLUSH, on its image fd only");
  return b;
}

PolicyBuilder DeviceRng() {
  PolicyBuilder b = Device("device-rng");
  b.AllowGetrandom();
  return b;
}

// virtio-vsock with unix sockets on the host side (vmm/device/vsock/): it accepts host
// clients on a listener bound before confinement and connects to the host's listeners in
// the one directory Confine binds into its root (ConfineOptions::bind_dir).
PolicyBuilder DeviceVsock() {
  PolicyBuilder b = Device("device-vsock");
  b.AllowIf("socket",
            {ArgEq(0, AF_UNIX, "AF_UNIX"),
             ArgEq(1, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   "SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"),
             ArgEq(2, 0, "protocol 0")},
            "a unix stream socket for a guest's connection to a host port")
      // connect's address is a pointer seccomp cannot read: the path is bounded by the mount
      // namespace instead (an empty root holding only the bound socket directory), and the
      // network namespace is empty, so only a unix socket in that directory is reachable.
      .AllowRisky("connect", {}, "to the host's listener for a port, beneath the bound directory")
      .AllowIf("accept4", {ArgEq(3, SOCK_NONBLOCK | SOCK_CLOEXEC, "SOCK_NONBLOCK|SOCK_CLOEXEC")},
               "a host client on the listener bound before confinement")
      .AllowIf("shutdown", {ArgEq(1, SHUT_WR, "SHUT_WR")},
               "pass on a guest's SHUTDOWN(SEND) to the host side");
  return b;
}

// `state_dir`: the process holds a state directory fd ($state_dir_fd). Without one
// (ephemeral) no path-taking rule is added at all: a placeholder dirfd that "matches
// nothing" would match the register value a caller can choose (-1 is all ones), and an
// absolute path ignores the dirfd anyway.
PolicyBuilder Vtpm(bool state_dir) {
  PolicyBuilder b = Base("vtpm");
  const std::string dir(kParamStateDirFd);
  b.AllowSocketIo()  // control and data channels (swtpm protocol; CMD_SET_DATAFD passes an fd)
                     // Standalone (vmm-vtpm --ctrl/--server): the listening sockets were bound
                     // before confinement; the server accepts on them. Started by vmm it holds
                     // no listening socket, and it cannot create one (no socket/bind/listen).
      .AllowIf("accept4", {ArgEq(3, SOCK_NONBLOCK | SOCK_CLOEXEC, "SOCK_NONBLOCK|SOCK_CLOEXEC")},
               "a control or data connection on a listening socket bound before confinement");
  if (state_dir) {
    // State is written atomically (ARCHITECTURE.md §6): write a temp file, fsync, rename over the
    // old one, fsync the directory. openat/renameat/unlinkat take paths, which seccomp
    // cannot read, so they are bounded three ways:
    //   1. here: the dirfd must be the state dir fd (no AT_FDCWD), the open flags exact
    //      (no O_PATH, O_DIRECTORY, O_RDWR, no following a final symlink), no AT_REMOVEDIR;
    //   2. Landlock (Confine's landlock_file_dirs): file access only beneath the state dir,
    //      which catches "..", absolute paths and symlinks that leave it; Confine refuses
    //      to run a role with such a grant on a kernel without Landlock;
    //   3. pivot_root: an absolute path resolves in an empty read-only tmpfs.
    // What remains: the process can rename or replace its own state files, which it could
    // corrupt by writing anyway; state is authenticated (AES-GCM) and refused if it fails.
    b.AllowRisky("openat",
                 {ArgEqParam(0, dir),
                  ArgMaskedEq(2, 0xffffffff, kVtpmStateReadFlags, "O_RDONLY|O_CLOEXEC|O_NOFOLLOW")},
                 "read a state file beneath the state dir (path-based: see roles.cc)")
        .AllowRisky(
            "openat",
            {ArgEqParam(0, dir), ArgMaskedEq(2, 0xffffffff, kVtpmStateWriteFlags,
                                             "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC|O_NOFOLLOW")},
            "create the temp state file (path-based: see roles.cc)")
        .AllowRisky("renameat", {ArgEqParam(0, dir), ArgEqParam(2, dir)},
                    "temp file over the state file, both in the state dir (path-based)")
        .AllowRisky("unlinkat", {ArgEqParam(0, dir), ArgEq(2, 0, "files only")},
                    "remove a stale temp file in the state dir (path-based)");
  }
  b.Allow("pread64", "read a state file it opened")
      .Allow("pwrite64", "write the temp state file it opened")
      .Allow("fsync", "temp file and state dir durable before and after the rename")
      .Allow("fdatasync", "temp file durable");
  // libtpms reports failures (e.g. a state it cannot use) on its own stdio stream over
  // stderr, whose first write fstat()s fd 2. Only that: fd 2, AT_EMPTY_PATH.
  b.AllowIf("newfstatat",
            {ArgEq(0, STDERR_FILENO, "stderr"), ArgEq(3, AT_EMPTY_PATH, "AT_EMPTY_PATH")},
            "fstat(2) by stdio before libtpms's first error line");
  b.AllowIf("lseek", {ArgEq(0, STDERR_FILENO, "stderr")},
            "stdio's position check on stderr when libtpms writes an error line");
  // AES-GCM nonces for the sealed state, and libtpms's own randomness: OpenSSL's DRBG
  // reseeds from getrandom after a fork and periodically.
  b.AllowGetrandom();
  return b;
}

}  // namespace

namespace {

// What serving the management API takes, beyond the base set: the API threads' own filter and
// the manager role (which must let through everything the stricter, stacked filter allows).
void AllowApiServing(PolicyBuilder& b) {
  b.AllowIf("accept", {ArgEqParam(0, "api_socket")}, "connections on the API socket only");
  b.AllowIf("accept4", {ArgEqParam(0, "api_socket")}, "same");
  b.Allow("poll", "wait on a connection with a deadline (DeadlineStream); the manager's loop");
  b.Allow("ppoll", "same, where glibc uses ppoll");
  b.Allow("select", "cpp-httplib waits on the listening socket (select_read)");
  b.Allow("pselect6", "same, where glibc uses pselect6");
  b.Allow("getsockopt", "SO_PEERCRED and SO_PEERSEC: who is calling");
  b.Allow("setsockopt", "cpp-httplib's per-connection timeouts (SO_RCVTIMEO, SO_SNDTIMEO)");
  b.Allow("shutdown", "end a connection");
  b.Allow("fsync", "the audit log: each record reaches the disk before the answer");
  b.Allow("fdatasync", "same");
  b.Allow("sched_yield", "glibc's and OpenSSL's spin paths");
  b.Allow("capget", "read-only: its own capability sets (all empty; tests check them)");
}

}  // namespace

// The manager's API threads (vmm/manager/api_server.h): the accept loop and its one worker.
// Not a process role: the filter is loaded into those threads only.
Result<Policy> ManagerApiThreadPolicy() {
  PolicyBuilder b = Base("manager-api");
  b.AllowThreads()        // the accept loop starts the worker
      .AllowSocketIo()    // HTTP on accepted connections; the vTPM's data channel; audit netlink
      .AllowGetrandom();  // TSS2/OpenSSL on the attest path
  AllowApiServing(b);
  // Not here: open/openat (Landlock denies files too), socket/connect/bind, execve, kill, ptrace,
  // ioctl: lifecycle actions go to the manager's main thread as messages on a pipe.
  return b.Build();
}

// --- manager role (ARCHITECTURE.md §1): the manager's main thread once every child runs.
Result<PolicyBuilder> ManagerBuilder() {
  PolicyBuilder b = Base(std::string(kManagerRole));
  b.AllowThreads()        // the API's accept and worker threads
      .AllowGetrandom();  // OpenSSL: checkpoint signatures of the audit log, TSS2 sessions
  // Sockets it holds (no socket(), connect() or bind()): the vTPM's channels, the API's
  // connections, and the audit netlink socket opened at start, which sendto addresses.
  b.Allow("sendmsg", "the vTPM's channels, the API's connections");
  b.Allow("recvmsg", "same");
  b.Allow("sendto", "same, and Linux audit records to the kernel (netlink, opened at start)");
  b.Allow("recvfrom", "same: the kernel's audit acknowledgements");
  // Everything the API threads' own filter allows (ManagerApiThreadPolicy): filters stack, and
  // the stricter one must be reachable through this one.
  AllowApiServing(b);
  // The API thread confines itself further (ConfineApiThread): no_new_privs, an empty capability
  // set, Landlock with no filesystem access, then its own filter.
  b.AllowIf("prctl", {ArgEq(0, PR_SET_NO_NEW_PRIVS, "PR_SET_NO_NEW_PRIVS")},
            "the API thread sets no_new_privs before its filter");
  b.AllowIf("prctl", {ArgEq(0, PR_CAPBSET_READ, "PR_CAPBSET_READ")},
            "the API thread reads its bounding set");
  b.AllowIf("prctl", {ArgEq(0, PR_CAPBSET_DROP, "PR_CAPBSET_DROP")},
            "the API thread clears its bounding set (only narrows)");
  b.AllowIf("prctl",
            {ArgEq(0, PR_CAP_AMBIENT, "PR_CAP_AMBIENT"),
             ArgEq(1, PR_CAP_AMBIENT_CLEAR_ALL, "PR_CAP_AMBIENT_CLEAR_ALL")},
            "the API thread clears its ambient set (only narrows)");
  b.Allow("capset", "the API thread clears its capability sets (only narrows: no gain)");
  b.Allow("landlock_create_ruleset", "the API thread's Landlock domain (only narrows)");
  b.Allow("landlock_add_rule", "same");
  b.Allow("landlock_restrict_self", "same");
  b.Allow("seccomp", "the API thread's own, tighter filter (filters only stack)");
  // Supervising the children, all started before this filter.
  b.Allow("pidfd_send_signal",
          "forward SIGINT/SIGTERM and lifecycle signals to the VM process, kill a child that "
          "fails: through the pidfds it holds, one per child; no kill(2), which names any pid");
  b.Allow("waitid", "reap a child through its pidfd (P_PIDFD)");
  b.Allow("wait4", "reap a child that failed to start");
  b.AllowIf("signalfd4", {ArgEq(3, SFD_CLOEXEC, "SFD_CLOEXEC")}, "SIGINT/SIGTERM in the main loop");
  b.Allow("getuid", "its own uid and gid: the subject of its own audit records");
  b.Allow("getgid", "same");
  b.Allow("geteuid", "the API socket's owner is admin (OwnerIsAdmin(geteuid()))");
  b.Allow("getegid", "same, read-only");
  b.Allow("unlink", "remove the API socket at the end (its directory may refuse: harmless)");
  b.Allow("unlinkat", "same, where glibc uses unlinkat");
  b.AllowFcntl({F_DUPFD_CLOEXEC});
  b.Allow("flock", "the audit log: one writer at a time (AuditTrail)");
  b.Allow("pread64",
          "the audit log's last records, through the fd it holds, when another writer appended "
          "(AuditTrail::ScanTail)");
  // No path at all: every file it uses is open before this filter.
  b.AllowIf("newfstatat", {ArgEq(3, AT_EMPTY_PATH, "AT_EMPTY_PATH")},
            "fstat of an fd it holds (stdio's first write, the audit log's size)");
  b.Allow("fstat", "same, where glibc uses fstat");
  b.ReturnErrno("socket", EACCES, "a library's syslog line: refused, no new socket");
  // Not here: execve, clone of a process or a namespace, open/openat (no file is opened after
  // this point), socket/connect/bind, ioctl (no KVM), ptrace, mount, setuid and friends, module
  // loading, bpf, perf.
  return b;
}

namespace {

struct RoleEntry {
  std::string_view name;
  std::function<PolicyBuilder()> builder;
  std::vector<Rlimit> rlimits;
};

const std::vector<RoleEntry>& Roles() {
  // RLIMIT_NPROC counts every process of the real uid on the host and is ignored for uid 0
  // (kernel/fork.c), so it is only a backstop, set to 0 where the role never clones; the
  // vcpu role starts threads and relies on its clone filter instead. RLIMIT_FSIZE bounds
  // regular files only (pipes and sockets are not affected): a role's stderr is a pipe to
  // its parent (sandbox/child_log.h), so the limit never costs a log line.
  static const auto* roles = new std::vector<RoleEntry>{
      {"vcpu",
       [] { return Vcpu(); },
       // fds: VM, one per vCPU (up to 254), two eventfds per virtqueue, a few sockets.
       // FSIZE: --serial file= makes the console log a regular file; bound it.
       {{RLIMIT_CORE, 0}, {RLIMIT_NOFILE, 1024}, {RLIMIT_FSIZE, 1024 * kMiB}}},
      {kVcpuKvmPvmRole,
       VcpuKvmPvm,
       {{RLIMIT_CORE, 0}, {RLIMIT_NOFILE, 1024}, {RLIMIT_FSIZE, 1024 * kMiB}}},
      {"device",
       [] { return Device("device"); },
       {{RLIMIT_CORE, 0}, {RLIMIT_NOFILE, 128}, {RLIMIT_FSIZE, 0}, {RLIMIT_NPROC, 0}}},
      // FSIZE is the caller's: set it to the image size so no bug can grow the image.
      {"device-blk", DeviceBlk, {{RLIMIT_CORE, 0}, {RLIMIT_NOFILE, 128}, {RLIMIT_NPROC, 0}}},
      {"device-rng",
       DeviceRng,
       {{RLIMIT_CORE, 0}, {RLIMIT_NOFILE, 128}, {RLIMIT_FSIZE, 0}, {RLIMIT_NPROC, 0}}},
      // fds: the session, guest RAM, 6 eventfds, the listener, up to 64 connections and 16
      // clients half-way through their CONNECT line.
      {"device-vsock",
       DeviceVsock,
       {{RLIMIT_CORE, 0}, {RLIMIT_NOFILE, 128}, {RLIMIT_FSIZE, 0}, {RLIMIT_NPROC, 0}}},
      // State blobs (permanent + volatile) are tens of KiB; 4 MiB leaves room for NV growth.
      // The persistent vTPM's filter (what `vmm sandbox show vtpm` prints); an ephemeral
      // one comes from VtpmFilter(-1).
      {"vtpm",
       [] { return Vtpm(/*state_dir=*/true); },
       {{RLIMIT_CORE, 0}, {RLIMIT_NOFILE, 32}, {RLIMIT_FSIZE, 4 * kMiB}, {RLIMIT_NPROC, 0}}},
  };
  return *roles;
}

Result<const RoleEntry*> Find(std::string_view role) {
  for (const RoleEntry& r : Roles()) {
    if (r.name == role) return &r;
  }
  std::string known;
  for (const std::string& n : RoleNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgument("unknown sandbox role '" + std::string(role) + "' (roles: " + known + ")");
}

}  // namespace

std::string_view VcpuRole(bool kvm_compat) { return kvm_compat ? kVcpuKvmPvmRole : "vcpu"; }

std::vector<std::string> RoleNames() {
  std::vector<std::string> names;
  for (const RoleEntry& r : Roles()) names.emplace_back(r.name);
  return names;
}

Result<PolicyBuilder> BuilderForRole(std::string_view role) {
  if (role == kManagerRole) return ManagerBuilder();
  ASSIGN_OR_RETURN(const RoleEntry* r, Find(role));
  return r->builder();
}

Result<Policy> PolicyForRole(std::string_view role) {
  ASSIGN_OR_RETURN(PolicyBuilder b, BuilderForRole(role));
  return b.Build();
}

Result<RoleFilter> VtpmFilter(int state_dir_fd) {
  if (state_dir_fd < 0) {
    ASSIGN_OR_RETURN(Policy ephemeral, Vtpm(/*state_dir=*/false).Build());
    return RoleFilter{std::move(ephemeral), {}};
  }
  ASSIGN_OR_RETURN(Policy p, PolicyForRole("vtpm"));
  return RoleFilter{std::move(p),
                    {{std::string(kParamStateDirFd), static_cast<uint64_t>(state_dir_fd)}}};
}

Result<std::vector<Rlimit>> RoleRlimits(std::string_view role) {
  ASSIGN_OR_RETURN(const RoleEntry* r, Find(role));
  return r->rlimits;
}

std::string RoleSelinuxType(std::string_view role) {
  std::string t = "vmm_" + std::string(role) + "_t";
  for (char& c : t) {
    if (c == '-') c = '_';
  }
  return t;
}

std::string RoleSelinuxContext(std::string_view role, std::string_view level) {
  return "system_u:system_r:" + RoleSelinuxType(role) + ":" + std::string(level);
}

}  // namespace vmm::sandbox
