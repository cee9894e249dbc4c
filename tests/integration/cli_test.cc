// Every kind of bad input to `vmm run` exits 2 with a one-line message naming the problem.
// None of these needs /dev/kvm: input is checked before KVM is opened.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"
#include "tests/unit/common/expect_text.h"

namespace vmm::testing {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

std::string Kernel() {
  static std::string path = WriteTempFile("kernel.elf", MakePvhElf());
  return path;
}

void ExpectUsageError(const std::vector<std::string>& args, const std::string& message) {
  ProcessResult r = RunVmm(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(message), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("vmm: error: "), 0u) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(VmmCli, HelpAndVersionExitZero) {
  ProcessResult help = RunProcess({BinDir() + "/vmm", "run", "--help"}, 10);
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag :
       {"--kernel", "--initramfs", "--cmdline", "--cpus", "--memory", "--serial", "--config",
        "--dry-run", "--profile", "--profile-symbols", "--exit-stats"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
  ProcessResult version = RunProcess({BinDir() + "/vmm", "--version"}, 10);
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("vmm ", 0), 0u);
}

TEST(VmmCli, MissingKernelFile) {
  ExpectUsageError({"--kernel", "/nonexistent/vmlinux"}, "No such file");
}

TEST(VmmCli, KernelIsADirectory) { ExpectUsageError({"--kernel", "/"}, "not a regular file"); }

TEST(VmmCli, UnreadableKernelFile) {
  // A socket file cannot be opened by anyone, root included (open fails with ENXIO).
  std::string path = WriteTempFile("sock", {});
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ExpectUsageError({"--kernel", path}, "cannot be opened");
  close(fd);
}

// open(2) of a FIFO blocks until a writer comes, so every file input is refused at once,
// --dry-run or not, with the flag and the path in the message (a read-only --disk too).
TEST(VmmCli, FifoAsKernelInitramfsConfigOrDiskExitsTwoPromptly) {
  std::string fifo = WriteTempFile("input.fifo", {});
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"--kernel", {"--kernel", fifo}},
      {"--initramfs", {"--kernel", Kernel(), "--initramfs", fifo}},
      {"--config", {"--config", fifo}},
  };
  for (const auto& [flag, args] : cases) {
    for (bool dry_run : {true, false}) {
      std::vector<std::string> a = args;
      if (dry_run) a.push_back("--dry-run");
      ProcessResult r = RunVmm(a, 10);
      EXPECT_FALSE(r.timed_out) << flag << ": vmm hung opening the FIFO";
      EXPECT_EQ(r.exit_code, 2) << flag << ": " << r.err;
      EXPECT_NE(r.err.find(flag + " '" + fifo + "' is not a regular file"), std::string::npos)
          << r.err;
    }
  }
  ProcessResult disk =
      RunVmm({"--kernel", Kernel(), "--disk", "path=" + fifo + ",readonly=on", "--dry-run"}, 10);
  EXPECT_FALSE(disk.timed_out) << "--disk: vmm hung opening the FIFO";
  EXPECT_EQ(disk.exit_code, 2) << disk.err;
  EXPECT_NE(disk.err.find("--disk '" + fifo + "': not a regular file or block device"),
            std::string::npos)
      << disk.err;
  unlink(fifo.c_str());
}

TEST(VmmCli, FileThatIsNotAKernel) {
  std::string path = WriteTempFile("notakernel", std::vector<uint8_t>(8192, 0x41));
  ExpectUsageError({"--kernel", path}, "not a kernel this VMM can boot");
}

TEST(VmmCli, ElfWithoutPvhNote) {
  ElfSpec spec;
  spec.with_pvh_note = false;
  ExpectUsageError({"--kernel", WriteTempFile("nopvh.elf", MakePvhElf(spec))}, "no PVH entry note");
}

TEST(VmmCli, EmptyKernelFile) {
  ExpectUsageError({"--kernel", WriteTempFile("empty", {})}, "is empty");
}

TEST(VmmCli, NoKernelGiven) { ExpectUsageError({}, "no kernel given"); }

TEST(VmmCli, MemoryTooSmall) {
  ExpectUsageError({"--kernel", Kernel(), "--memory", "1M"}, "below the minimum");
}

TEST(VmmCli, MemoryTooLargeForHost) {
  ExpectUsageError({"--kernel", Kernel(), "--memory", "size=900T"}, "more than this host has");
}

TEST(VmmCli, MemoryNotANumber) {
  ExpectUsageError({"--kernel", Kernel(), "--memory", "lots"}, "not a whole number");
}

TEST(VmmCli, ZeroCpus) {
  ExpectUsageError({"--kernel", Kernel(), "--cpus", "0"}, "at least one vCPU");
}

TEST(VmmCli, TooManyCpus) {
  ExpectUsageError({"--kernel", Kernel(), "--cpus", "boot=1000"}, "supported");
}

TEST(VmmCli, CommandLineTooLong) {
  ExpectUsageError({"--kernel", Kernel(), "--cmdline", std::string(5000, 'x')},
                   "longer than the kernel accepts");
}

TEST(VmmCli, InitramfsDoesNotFit) {
  std::string big = WriteTempFile("big.cpio", std::vector<uint8_t>((63u << 20) / 2, 0));
  ExpectUsageError({"--kernel", Kernel(), "--memory", "32M", "--initramfs", big}, "does not fit");
}

TEST(VmmCli, MissingInitramfs) {
  ExpectUsageError({"--kernel", Kernel(), "--initramfs", "/nonexistent.cpio"},
                   "initramfs '/nonexistent.cpio'");
}

TEST(VmmCli, UnknownFlag) { ExpectUsageError({"--kernel", Kernel(), "--gpus", "1"}, "--gpus"); }

TEST(VmmCli, BadSerialMode) {
  ExpectUsageError({"--kernel", Kernel(), "--serial", "pty"}, "--serial");
}

TEST(VmmCli, MalformedJsonConfig) {
  std::string cfg = WriteTempFile("bad.json", {'{', '"', 'k'});
  ExpectUsageError({"--config", cfg}, "not valid JSON");
}

TEST(VmmCli, UnknownJsonKey) {
  std::string text = "{\"kernel\": \"" + Kernel() + "\", \"vcpus\": 2}";
  std::string cfg = WriteTempFile("unknown.json", std::vector<uint8_t>(text.begin(), text.end()));
  ExpectUsageError({"--config", cfg}, "unknown setting 'vcpus'");
}

TEST(VmmCli, MissingConfigFile) {
  ExpectUsageError({"--config", "/nonexistent.json"}, "--config '/nonexistent.json'");
}

TEST(VmmCli, SandboxShowPrintsEveryRolesFilter) {
  for (const char* role : {"vcpu", "device-blk", "device-rng", "device-vsock", "vtpm"}) {
    ProcessResult r = RunProcess({BinDir() + "/vmm", "sandbox", "show", role}, 10);
    EXPECT_EQ(r.exit_code, 0) << role << ": " << r.err;
    EXPECT_NE(r.out.find("exit_group"), std::string::npos) << role;
  }
  ProcessResult vcpu = RunProcess({BinDir() + "/vmm", "sandbox", "show", "vcpu"}, 10);
  EXPECT_NE(vcpu.out.find("KVM_RUN"), std::string::npos) << vcpu.out;
  ProcessResult bad = RunProcess({BinDir() + "/vmm", "sandbox", "show", "manager2"}, 10);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST(VmmCli, DryRunPrintsThePlanFromJsonWithFlagOverrides) {
  std::string text = "{\"kernel\": \"" + Kernel() + "\", \"cpus\": 2, \"memory\": \"64M\"}";
  std::string cfg = WriteTempFile("good.json", std::vector<uint8_t>(text.begin(), text.end()));
  ProcessResult r = RunVmm({"--config", cfg, "--cpus", "3", "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(r.out, {"\"cpus\": 3", "\"memory\": 67108864", "boot protocol: pvh"});
}

TEST(VmmCli, DryRunShowsTheKvmCompatModuleAndItsKernelParameters) {
  ProcessResult on =
      RunVmm({"--kernel", Kernel(), "--cmdline", "quiet", "--kvm-compat", "on", "--dry-run"});
  EXPECT_EQ(on.exit_code, 0) << on.err;
  ExpectContainsAll(
      on.out,
      {"command line: \"quiet noxsave nopti clearcpuid=ssse3,popcnt "
       "cryptomgr.notests=1 "
       "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs "
       "mitigations=off audit=0 tsc=reliable no_timer_check\"\n",
       "kvm_pvm compatibility: on (--kvm-compat on)", "\"kvm-compat\": \"on\""});

  ProcessResult off =
      RunVmm({"--kernel", Kernel(), "--cmdline", "quiet", "--kvm-compat", "off", "--dry-run"});
  EXPECT_EQ(off.exit_code, 0) << off.err;
  ExpectContainsAll(off.out,
                    {"command line: \"quiet\"\n", "kvm_pvm compatibility: off (--kvm-compat off)"});

  ProcessResult bad = RunVmm({"--kernel", Kernel(), "--kvm-compat", "maybe", "--dry-run"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("not one of auto, on, off"), std::string::npos) << bad.err;
}

TEST(VmmCli, DryRunKvmCompatLeavesTheUsersOwnKeysAlone) {
  ProcessResult r = RunVmm({"--kernel", Kernel(), "--cmdline", "quiet mitigations=auto nopti",
                            "--kvm-compat", "on", "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(
      r.out,
      {"command line: \"quiet mitigations=auto nopti noxsave clearcpuid=ssse3,popcnt "
       "cryptomgr.notests=1 "
       "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs "
       "audit=0 tsc=reliable no_timer_check\"\n",
       "adds \"noxsave clearcpuid=ssse3,popcnt cryptomgr.notests=1 "
       "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs "
       "audit=0 "
       "tsc=reliable no_timer_check\" to the command line; leaves out "
       "\"nopti mitigations=off\" (the command line sets the same keys)"});
}

TEST(VmmCli, DryRunShowsAnElf32PvhKernel) {
  std::string k = WriteTempFile("kernel32.elf", MakePvhElf32());
  ProcessResult r = RunVmm({"--kernel", k, "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(
      r.out, {"boot protocol: pvh\n", "kernel format: ELF32 i386 with a Xen PVH entry note\n",
              "kernel: 0x100000..0x101040, entry 0x100000\n"});
}

TEST(VmmCli, Elf32KernelLargerThanTheVmsMemory) {
  ElfSpec spec;
  spec.extra_bss = 0x7FF00000;  // a 2 GiB bss in a 64 MiB VM
  ExpectUsageError({"--kernel", WriteTempFile("big32.elf", MakePvhElf32(spec)), "--memory", "64M"},
                   "give the VM more --memory");
}

TEST(VmmCli, Elf32KernelWithOverlappingSegments) {
  ElfSpec spec;
  spec.second_segment_paddr = spec.paddr + 0x100;
  ExpectUsageError({"--kernel", WriteTempFile("overlap32.elf", MakePvhElf32(spec))},
                   "loadable segments overlap in memory");
}

// A directory of its own under the tests' temporary directory.
std::string TempSubdir(const std::string& name) {
  std::string marker = WriteTempFile(name + ".marker", {});
  std::string dir = marker.substr(0, marker.rfind('/')) + "/" + name;
  mkdir(dir.c_str(), 0700);
  return dir;
}

std::string WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f != nullptr) {
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  return path;
}

// Where `vmm run --profile --dry-run` says it takes the kernel's symbols from, given the files
// in the kernel's directory.
struct ProfileSymbolsCase {
  const char* label;
  const char* kernel;  // the kernel's file name (an ELF without a symbol table, like vmlinux)
  std::vector<std::pair<std::string, std::string>> maps;  // System.map-like files: name, text
  const char* named;   // the --profile-symbols file among `maps`, or nullptr
  std::string expect;  // in stdout, after the kernel's directory and '/' where it has "{dir}"
};

class VmmCliProfile : public ::testing::TestWithParam<ProfileSymbolsCase> {};

TEST_P(VmmCliProfile, SaysWhereTheSymbolsComeFrom) {
  const ProfileSymbolsCase& c = GetParam();
  const std::string dir = TempSubdir(c.label);
  std::vector<uint8_t> elf = MakePvhElf();
  std::vector<std::string> args = {
      "--kernel", WriteFile(dir + "/" + c.kernel, std::string(elf.begin(), elf.end())), "--profile",
      "--dry-run"};
  for (const auto& [name, text] : c.maps) WriteFile(dir + "/" + name, text);
  if (c.named != nullptr) args.insert(args.end(), {"--profile-symbols", dir + "/" + c.named});
  std::string expect = c.expect;
  if (size_t at = expect.find("{dir}"); at != std::string::npos) expect.replace(at, 5, dir + "/");
  ProcessResult r = RunVmm(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(expect), std::string::npos) << r.out;
}

const std::pair<std::string, std::string> kSystemMap = {"System.map", "ffffffff81000000 T _text\n"};

INSTANTIATE_TEST_SUITE_P(
    VmmCli, VmmCliProfile,
    ::testing::Values(
        // Debian's layout: the versioned map wins over a plain one in the same directory.
        ProfileSymbolsCase{"FindsTheSystemMapBesideTheKernel",
                           "vmlinuz-6.1.0-test",
                           {{"System.map-6.1.0-test", "ffffffff81000000 T _text\n"},
                            {"System.map", "ffffffff81000000 T other\n"}},
                           nullptr,
                           "profile: symbols from {dir}System.map-6.1.0-test (found beside the "
                           "kernel)\n"},
        ProfileSymbolsCase{"TakesSystemMapFromTheKernelsDirectory",
                           "vmlinux",
                           {kSystemMap},
                           nullptr,
                           "profile: symbols from {dir}System.map (found beside the kernel)"},
        ProfileSymbolsCase{
            "WithoutAnySymbolsSaysAddressesOnly",
            "vmlinux",
            {},
            nullptr,
            "profile: the kernel has no symbol table and no System.map is beside it"},
        ProfileSymbolsCase{"UsesTheNamedSymbolFile",
                           "vmlinux",
                           {kSystemMap, {"mine.map", "ffffffff81000000 T _text\n"}},
                           "mine.map",
                           "profile: symbols from {dir}mine.map\n"}),
    [](const ::testing::TestParamInfo<ProfileSymbolsCase>& info) {
      return std::string(info.param.label);
    });

// vmm-vcpu checks the VM spec (vmm/contract/vm_spec.h) before it does anything: a bad one
// is refused with exit status 2 and the reason, whatever fds it names.
TEST(VmProcessCli, RefusesABadSpecBeforeUsingIt) {
  const std::string vcpu = BinDir() + "/vmm-vcpu";
  const std::string good_but_version =
      R"({"version":2,"kernel":"/proc/self/fd/5","initramfs":"","event_log":"","cmdline":"","cpus":1,)"
      R"("memory":536870912,"serial":{"mode":"tty","path":""},"kvm_compat":"auto",)"
      R"("kvm_fd":4,"devices":[],"tpm_fd":null,)"
      R"("diagnostics":{"profile":false,"exit_stats":false,"profile_symbols":""}})";
  struct Case {
    std::string spec;
    std::string reason;
  };
  std::string stdio_kvm = good_but_version;
  stdio_kvm.replace(stdio_kvm.find("\"version\":2"), 11, "\"version\":1");
  stdio_kvm.replace(stdio_kvm.find("\"kvm_fd\":4"), 10, "\"kvm_fd\":0");
  for (const Case& c : std::vector<Case>{
           {good_but_version, "vm spec: version 2 is not the version this vmm-vcpu reads (1)"},
           {"blk0:2:60:7", "vm spec: not valid JSON"},
           {stdio_kvm, "vm spec: 'kvm_fd': 0 is not an fd number the VM process can be given"},
       }) {
    ProcessResult r = RunProcess({vcpu, "--spec", c.spec}, 10);
    EXPECT_EQ(r.exit_code, 2) << c.spec << "\n" << r.err;
    EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace vmm::testing
