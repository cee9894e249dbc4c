// `vmm vtpm provision` and `vmm vtpm ek` as an operator runs them: each starts the VM's
// confined vmm-vtpm on its sealed state (no KVM needed). Provisioning writes EK
// certificates signed by the host's vTPM CA into NV; a later process reads them back from
// the state it reloads (state survives a restart), and they verify with `openssl verify`.
// A tampered state, and a state file swapped in from another VM, are refused by name.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "tests/integration/vmm_process.h"

namespace vmm::testing {
namespace {

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
  ProcessResult p = Vmm({"vtpm", "provision", "--vm", Vm(dir, "vm1"), "--ca", dir + "/ca",
                         "--vm-id", "vm1"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.err.find("RSA 2048 EK certified"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("0x01c0000a"), std::string::npos) << p.err;
  struct stat st {};
  ASSERT_EQ(stat((dir + "/ca/vtpm-ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << "the CA key is readable by others";

  ProcessResult e = Vmm({"vtpm", "ek", "--vm", Vm(dir, "vm1"), "--ca", dir + "/ca", "--out", dir});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.err.find("verifies against"), std::string::npos) << e.err;
  if (access("/usr/bin/openssl", X_OK) != 0) GTEST_SKIP() << "openssl CLI not installed";
  for (const char* kind : {"rsa2048", "eccp256"}) {
    ProcessResult v = RunProcess({"/usr/bin/openssl", "verify", "-CAfile", dir + "/ca/vtpm-ca.crt",
                                  dir + "/ek-" + kind + ".crt.pem"},
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

}  // namespace
}  // namespace vmm::testing
