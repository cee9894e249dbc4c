// `vmm vtpm provision` and `vmm vtpm ek` as an operator runs them: each starts the VM's
// confined vmm-vtpm on its sealed state (no KVM needed). Provisioning writes EK
// certificates signed by the host's vTPM CA into NV; a later process reads them back from
// the state it reloads (state survives a restart), and they verify with `openssl verify`.
// A tampered state, and a state file swapped in from another VM, are refused by name.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"
#include "tests/unit/common/expect_text.h"
#include "tests/unit/common/last_line_with.h"

namespace vmm::testing {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

std::string TempDir(const std::string& name) {
  std::string dir = WriteTempFile(name + ".marker", {});
  dir = dir.substr(0, dir.rfind('/')) + "/" + name;
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(mkdir(dir.c_str(), 0700), 0);
  return dir;
}

ProcessResult Vmm(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinDir() + "/vmm"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, 120);
}

std::string Vm(const std::string& dir, const std::string& vm) {
  return "state=" + dir + "/" + vm + ",key=" + dir + "/" + vm + ".key";
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

TEST(VtpmCli, ProvisionThenEkFromANewProcessVerifiesAgainstTheHostCa) {
  std::string dir = TempDir("vtpm-cli-provision");
  ProcessResult p =
      Vmm({"vtpm", "provision", "--vm", Vm(dir, "vm1"), "--ca", dir + "/ca", "--vm-id", "vm1"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  ExpectContainsAll(p.err, {"RSA 2048 EK certified", "0x01c0000a"});
  // The AK: certified after the credential challenge, its Name in the report.
  const size_t ak_at = p.err.find("endorsement primary) 000b");
  ASSERT_NE(ak_at, std::string::npos) << p.err;
  const std::string ak_name = p.err.substr(p.err.find("000b", ak_at), 68);
  ExpectContainsAll(p.err, {"TPM2_ActivateCredential recovered", "0x01c101c0"});
  struct stat st {};
  ASSERT_EQ(stat((dir + "/ca/vtpm-ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << "the CA key is readable by others";

  ProcessResult e = Vmm({"vtpm", "ek", "--vm", Vm(dir, "vm1"), "--ca", dir + "/ca", "--out", dir});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.err.find("verifies against"), std::string::npos) << e.err;
  // A new process recreates the same AK, and its certificate matches it.
  EXPECT_NE(e.err.find("AK " + ak_name + ": certificate (NV 0x01c101c0) verifies"),
            std::string::npos)
      << e.err;
  if (access("/usr/bin/openssl", X_OK) != 0) GTEST_SKIP() << "openssl CLI not installed";
  for (const char* cert : {"ek-rsa2048", "ek-eccp256", "ak"}) {
    ProcessResult v = RunProcess({"/usr/bin/openssl", "verify", "-CAfile", dir + "/ca/vtpm-ca.crt",
                                  dir + "/" + cert + ".crt.pem"},
                                 30);
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_NE(v.out.find(": OK"), std::string::npos) << v.out;
  }

  ProcessResult again = Vmm({"vtpm", "provision", "--vm", Vm(dir, "vm1"), "--ca", dir + "/ca"});
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_NE(again.err.find("already provisioned"), std::string::npos) << again.err;
}

TEST(VtpmCli, TamperedTruncatedAndSwappedStatesAreRefusedNotReset) {
  std::string dir = TempDir("vtpm-cli-tamper");
  for (const char* vm : {"vm1", "vm2"}) {
    ProcessResult p = Vmm({"vtpm", "provision", "--vm", Vm(dir, vm), "--ca", dir + "/ca"});
    ASSERT_EQ(p.exit_code, 0) << p.err;
  }
  const std::string state = dir + "/vm1/tpm-permanent.state";
  const std::string good = ReadAll(state);
  ASSERT_GT(good.size(), 64u);
  auto ek = [&] { return Vmm({"vtpm", "ek", "--vm", Vm(dir, "vm1"), "--ca", dir + "/ca"}); };

  std::string flipped = good;
  flipped[flipped.size() - 40] ^= 0x01;
  WriteAll(state, flipped);
  ProcessResult t = ek();
  EXPECT_NE(t.exit_code, 0) << t.err;
  EXPECT_NE(t.err.find("vTPM"), std::string::npos) << t.err;
  EXPECT_EQ(ReadAll(state), flipped) << "a state that failed its check was overwritten";

  WriteAll(state, good.substr(0, good.size() / 2));
  ProcessResult c = ek();
  EXPECT_NE(c.exit_code, 0) << c.err;

  WriteAll(state, ReadAll(dir + "/vm2/tpm-permanent.state"));
  ProcessResult s = ek();
  EXPECT_NE(s.exit_code, 0) << s.err;
  EXPECT_NE(s.err.find("another VM"), std::string::npos) << s.err;

  WriteAll(state, good);
  ProcessResult ok = ek();
  EXPECT_EQ(ok.exit_code, 0) << "the original state loads again\n" << ok.err;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

void ExpectRefused(const ProcessResult& r, const std::string& message) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  ExpectContainsAll(r.err, {"vmm: error: ", message});
}

// The state directory is what the vTPM process's Landlock rule opens: a symlink would
// make it some other directory, and one that group or others can write lets them swap
// state files. Each is refused, and nothing (no CA) is created on the way.
TEST(VtpmCli, ProvisionRefusesASymlinkedOrGroupWritableStateDirBeforeCreatingAnything) {
  std::string dir = TempDir("vtpm-cli-statedir");
  ASSERT_EQ(mkdir((dir + "/real").c_str(), 0700), 0);
  ASSERT_EQ(symlink((dir + "/real").c_str(), (dir + "/link").c_str()), 0);
  ExpectRefused(Vmm({"vtpm", "provision", "--vm", "state=" + dir + "/link,key=" + dir + "/k",
                     "--ca", dir + "/ca"}),
                "'" + dir + "/link' is a symbolic link");
  for (mode_t mode : {0770, 0707, 0777}) {
    ASSERT_EQ(chmod((dir + "/real").c_str(), mode), 0);
    ExpectRefused(Vmm({"vtpm", "provision", "--vm", "state=" + dir + "/real,key=" + dir + "/k",
                       "--ca", dir + "/ca"}),
                  "group or others may write it");
  }
  EXPECT_FALSE(Exists(dir + "/ca")) << "a refused provision created the CA";
  EXPECT_FALSE(Exists(dir + "/k")) << "a refused provision created the key";
}

TEST(VtpmCli, ProvisionRefusesACaDirectoryInsideTheVmsStateDirectory) {
  std::string dir = TempDir("vtpm-cli-ca-inside");
  for (const std::string& ca : {dir + "/vm1/ca", dir + "/vm1", dir + "/vm1/./sub/../ca2"}) {
    ExpectRefused(Vmm({"vtpm", "provision", "--vm", Vm(dir, "vm1"), "--ca", ca}),
                  "inside the VM's state directory");
  }
  // The same directory reached through a symlink is still inside.
  ASSERT_EQ(mkdir((dir + "/vm1").c_str(), 0700), 0);
  ASSERT_EQ(symlink((dir + "/vm1").c_str(), (dir + "/alias").c_str()), 0);
  ExpectRefused(Vmm({"vtpm", "provision", "--vm", Vm(dir, "vm1"), "--ca", dir + "/alias/ca"}),
                "inside the VM's state directory");
  EXPECT_FALSE(Exists(dir + "/vm1/ca"));
  EXPECT_FALSE(Exists(dir + "/alias/ca"));
}

TEST(VtpmCli, ProvisionChecksVmBeforeItCreatesTheCa) {
  std::string dir = TempDir("vtpm-cli-order");
  ExpectRefused(Vmm({"vtpm", "provision", "--vm", "ephemeral", "--ca", dir + "/ca"}),
                "persistent state");
  ExpectRefused(Vmm({"vtpm", "provision", "--vm", "state=" + dir + "/vm1", "--ca", dir + "/ca"}),
                "--vm");
  EXPECT_FALSE(Exists(dir + "/ca")) << "a refused provision left a new CA behind";
}

TEST(VtpmCli, ProvisionHelpHasItsOwnExitStatusText) {
  ProcessResult h = Vmm({"vtpm", "provision", "--help"});
  EXPECT_EQ(h.exit_code, 0) << h.err;
  EXPECT_EQ(h.out.find("guest powered off"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("Exit status: 0 the EKs were created, certified and stored"),
            std::string::npos)
      << h.out;
  ProcessResult ek = Vmm({"vtpm", "ek", "--help"});
  EXPECT_EQ(ek.exit_code, 0) << ek.err;
  EXPECT_EQ(ek.out.find("guest powered off"), std::string::npos) << ek.out;
  ProcessResult run = Vmm({"run", "--help"});
  EXPECT_NE(run.out.find("guest powered off"), std::string::npos) << run.out;
}

TEST(VtpmCli, RunRefusesAGroupWritableOrSymlinkedStateDir) {
  std::string dir = TempDir("vtpm-cli-run-statedir");
  const std::string kernel = WriteTempFile("vtpm-cli-kernel.elf", MakePvhElf());
  ASSERT_EQ(mkdir((dir + "/vm1").c_str(), 0770), 0);
  ASSERT_EQ(chmod((dir + "/vm1").c_str(), 0770), 0);
  ExpectRefused(Vmm({"run", "--kernel", kernel, "--tpm", Vm(dir, "vm1"), "--dry-run"}),
                "group or others may write it");
  ASSERT_EQ(chmod((dir + "/vm1").c_str(), 0700), 0);
  ASSERT_EQ(symlink((dir + "/vm1").c_str(), (dir + "/link").c_str()), 0);
  ExpectRefused(Vmm({"run", "--kernel", kernel, "--tpm", "state=" + dir + "/link,key=" + dir + "/k",
                     "--dry-run"}),
                "is a symbolic link");
}

// vmm-vtpm may not grow a regular file past 4 MiB (RLIMIT_FSIZE). Its lines reach the
// manager's stderr through a pipe, so an operator's long log file loses none of them.
TEST(VtpmCli, VtpmLinesReachAManagerStderrFilePastTheVtpmFileSizeLimit) {
  std::string dir = TempDir("vtpm-cli-log");
  const std::string log = dir + "/stderr.log";
  const size_t kFilled = 5u << 20;
  WriteAll(log, std::string(kFilled - 1, 'x') + "\n");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(120);
    int fd = open(log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(126);
    std::string bin = BinDir() + "/vmm", vm = Vm(dir, "vm1"), ca = dir + "/ca";
    execl(bin.c_str(), "vmm", "vtpm", "provision", "--vm", vm.c_str(), "--ca", ca.c_str(), nullptr);
    _exit(127);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  const std::string text = ReadAll(log).substr(kFilled);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << "\n" << text;
  const std::string landlock = vmm::testing_util::LastLineWith(text, "vmm-vtpm: landlock:");
  ASSERT_FALSE(landlock.empty()) << "the vTPM's landlock line was lost:\n" << text;
  EXPECT_EQ(landlock.rfind("vmm: vtpm: vmm-vtpm: landlock:", 0), 0u) << landlock;
  EXPECT_NE(text.find("RSA 2048 EK certified"), std::string::npos) << text;
}

// tpm2-tools, unchanged, through tpm2-tss's swtpm TCTI against the standalone vmm-vtpm
// (TCP data port N, control port N+1, as swtpm's): startup, getrandom, a PCR extend, and
// the PCR read back holds SHA-256(zeros || digest).
TEST(VtpmCli, Tpm2ToolsDriveTheStandaloneVtpmOverTheSwtpmTcti) {
  for (const char* tool : {"tpm2_startup", "tpm2_getrandom", "tpm2_pcrextend", "tpm2_pcrread"}) {
    if (access((std::string("/usr/bin/") + tool).c_str(), X_OK) != 0) {
      GTEST_SKIP() << tool << " not installed (Debian package tpm2-tools)";
    }
  }
  const int port = 20000 + 2 * (getpid() % 5000);
  pid_t vtpm = fork();
  ASSERT_GE(vtpm, 0);
  if (vtpm == 0) {
    std::string bin = BinDir() + "/vmm-vtpm";
    std::string data = "tcp:" + std::to_string(port), ctrl = "tcp:" + std::to_string(port + 1);
    execl(bin.c_str(), "vmm-vtpm", "--ctrl", ctrl.c_str(), "--server", data.c_str(), nullptr);
    _exit(127);
  }
  const std::string tcti = "--tcti=swtpm:host=127.0.0.1,port=" + std::to_string(port);
  auto tool = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin() + 1, tcti);
    return RunProcess(argv, 60);
  };
  ProcessResult up;
  for (int i = 0; i < 50; ++i) {  // until it listens
    up = tool({"/usr/bin/tpm2_startup", "-c"});
    if (up.exit_code == 0) break;
    usleep(100 * 1000);
  }
  EXPECT_EQ(up.exit_code, 0) << up.err;
  ProcessResult rnd = tool({"/usr/bin/tpm2_getrandom", "--hex", "16"});
  EXPECT_EQ(rnd.exit_code, 0) << rnd.err;
  EXPECT_EQ(rnd.out.size(), 32u) << rnd.out;
  const std::string digest(64, 'a');
  ProcessResult ext = tool({"/usr/bin/tpm2_pcrextend", "16:sha256=" + digest});
  EXPECT_EQ(ext.exit_code, 0) << ext.err;
  ProcessResult read = tool({"/usr/bin/tpm2_pcrread", "sha256:16"});
  EXPECT_EQ(read.exit_code, 0) << read.err;
  // SHA-256 of 32 zero bytes followed by 32 bytes of 0xaa.
  EXPECT_NE(read.out.find("0x9EF814B42FA0BE12D197C44D3E8E03441A4B1118237658368BA1351090E556ED"),
            std::string::npos)
      << read.out;
  kill(vtpm, SIGTERM);
  waitpid(vtpm, nullptr, 0);
}

}  // namespace
}  // namespace vmm::testing
