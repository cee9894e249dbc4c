// Remote attestation of one running VM by both paths (ARCHITECTURE.md §8, README "Remote
// attestation"): the manager quotes the vTPM for `vmm attest`, and the test guest quotes it
// itself over CRB with the same AK (tests/guest/checks/attest.c), its console lines becoming a
// bundle through `vmm-verify from-guest`. Both bundles verify affirming against the CA and a
// policy from `vmm measure`; the guest's, checked with another nonce, does not. Needs /dev/kvm.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/background_vm.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/common/temp_dir.h"

extern char** environ;

namespace vmm::testing {
namespace {

namespace fs = std::filesystem;

// Fixed nonces: a verifier would pick fresh ones; here each must differ from the other.
constexpr char kGuestNonce[] = "a11ce5eed0000000000000000000beef";
constexpr char kManagerNonce[] = "b0b5eed00000000000000000000cafe1";

ProcessResult Verify(const std::string& evidence, const std::string& ca, const std::string& policy,
                     const std::string& nonce) {
  return RunProcess({BinDir() + "/vmm-verify", "--evidence", evidence, "--ca", ca, "--policy",
                     policy, "--nonce", nonce},
                    60);
}

TEST(GuestAttestKvm, TheManagersAndTheGuestsBundlesBothVerify) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  testing_util::TempDir d("vmm-guest-attest");
  ASSERT_EQ(mkdir((d.File("vtpm")).c_str(), 0700), 0);
  const std::string tpm = "state=" + (d.File("vtpm/state")) + ",key=" + (d.File("vtpm/key"));
  const std::string vmm = BinDir() + "/vmm", ca_cert = d.File("ca/vtpm-ca.crt");
  ProcessResult provision = RunProcess(
      {vmm, "vtpm", "provision", "--vm", tpm, "--ca", d.File("ca"), "--vm-id", "guest-attest"},
      120);
  ASSERT_EQ(provision.exit_code, 0) << provision.err;

  const std::vector<std::string> vm = {
      "--kernel",  BinDir() + "/testguest.elf",
      "--tpm",     tpm,
      "--cmdline", std::string("expect_tpm=crb attest_nonce=") + kGuestNonce + " linger=20"};
  std::vector<std::string> measure = {vmm, "measure", "--policy-out", d.File("policy.json")};
  measure.insert(measure.end(), vm.begin(), vm.end());
  ProcessResult policy = RunProcess(measure, 60);
  ASSERT_EQ(policy.exit_code, 0) << policy.err;

  // Boot; once the guest's result line is out it lingers, and the manager quotes meanwhile.
  std::vector<std::string> run = vm;
  run.insert(run.end(),
             {"--event-log-out", d.File("event.log"), "--api-socket", d.File("api.sock")});
  BackgroundVm guest(run, d.File("serial.txt"), d.File("vmm.err"));
  ASSERT_TRUE(guest.started());
  std::string serial;
  for (int i = 0; i < 1200; ++i) {  // 120 s: kvm_pvm hosts run the guest's hashing slowly
    serial = ReadText(d.File("serial.txt"));
    if (serial.find("testguest: result") != std::string::npos || !guest.running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(serial.find("testguest: result"), std::string::npos)
      << serial << ReadText(d.File("vmm.err"));
  ProcessResult attest =
      RunProcess({vmm, "attest", "--api-socket", d.File("api.sock"), "--nonce", kManagerNonce,
                  "--out", d.File("manager.json"), "--ca", d.File("ca")},
                 60);
  // The certificates on the API (vmm ctl ak / ek), read from the vTPM's NV meanwhile.
  ProcessResult ak = RunProcess({vmm, "ctl", "--api-socket", d.File("api.sock"), "ak"}, 60);
  ProcessResult ek = RunProcess({vmm, "ctl", "--api-socket", d.File("api.sock"), "ek"}, 60);
  guest.Stop();
  ASSERT_EQ(attest.exit_code, 0) << attest.err;
  ASSERT_EQ(ak.exit_code, 0) << ak.err;
  ASSERT_EQ(ek.exit_code, 0) << ek.err;
  EXPECT_EQ(
      nlohmann::json::parse(ak.out, nullptr, false)["certificate"],
      nlohmann::json::parse(ReadText(d.File("manager.json")), nullptr, false)["ak"]["certificate"])
      << ak.out;
  EXPECT_NE(nlohmann::json::parse(ek.out, nullptr, false)["rsa2048"].get<std::string>().find(
                "BEGIN CERTIFICATE"),
            std::string::npos)
      << ek.out;
  EXPECT_NE(serial.find("testguest: result PASS"), std::string::npos) << serial;
  EXPECT_NE(serial.find("check attest: ok quote of sha256:0-9+sha384:0-9, "), std::string::npos)
      << serial;

  ProcessResult assemble =
      RunProcess({BinDir() + "/vmm-verify", "from-guest", "--serial", d.File("serial.txt"),
                  "--event-log", d.File("event.log"), "--nonce", kGuestNonce, "--out",
                  d.File("guest.json"), "--ca-chain", ca_cert},
                 60);
  ASSERT_EQ(assemble.exit_code, 0) << assemble.err;

  ProcessResult manager_verdict =
      Verify(d.File("manager.json"), ca_cert, d.File("policy.json"), kManagerNonce);
  EXPECT_EQ(manager_verdict.exit_code, 0) << manager_verdict.out << manager_verdict.err;
  EXPECT_NE(manager_verdict.out.find("source manager"), std::string::npos) << manager_verdict.out;
  ProcessResult guest_verdict =
      Verify(d.File("guest.json"), ca_cert, d.File("policy.json"), kGuestNonce);
  EXPECT_EQ(guest_verdict.exit_code, 0) << guest_verdict.out << guest_verdict.err;
  EXPECT_NE(guest_verdict.out.find("source guest"), std::string::npos) << guest_verdict.out;
  EXPECT_NE(guest_verdict.out.find("verdict: affirming"), std::string::npos) << guest_verdict.out;

  // One AK: the guest recreated the key the manager quotes with.
  auto manager_doc = nlohmann::json::parse(ReadText(d.File("manager.json")), nullptr, false);
  auto guest_doc = nlohmann::json::parse(ReadText(d.File("guest.json")), nullptr, false);
  ASSERT_FALSE(manager_doc.is_discarded() || guest_doc.is_discarded());
  EXPECT_EQ(guest_doc["ak"]["public"], manager_doc["ak"]["public"]);
  EXPECT_EQ(guest_doc["ak"]["certificate"], manager_doc["ak"]["certificate"]);

  // The guest's bundle is no answer to another verifier's nonce.
  ProcessResult stale = Verify(d.File("guest.json"), ca_cert, d.File("policy.json"), kManagerNonce);
  EXPECT_EQ(stale.exit_code, 1) << stale.out;
  EXPECT_NE(stale.out.find("fail  nonce"), std::string::npos) << stale.out;
  // Nor is its console assembled for another nonce.
  ProcessResult other = RunProcess(
      {BinDir() + "/vmm-verify", "from-guest", "--serial", d.File("serial.txt"), "--event-log",
       d.File("event.log"), "--nonce", kManagerNonce, "--out", d.File("other.json")},
      60);
  EXPECT_EQ(other.exit_code, 1) << other.err;
  EXPECT_NE(other.err.find("the guest quoted with nonce a11ce5eed"), std::string::npos)
      << other.err;
}

// An ephemeral vTPM was never provisioned: the guest finds no AK certificate and says where
// it looked; a nonce that is not hex fails the check before the TPM is touched.
TEST(GuestAttestKvm, WithoutAProvisionedAkOrWithABadNonceTheCheckFails) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  ProcessResult r = RunVmm({"--kernel", BinDir() + "/testguest.elf", "--tpm", "ephemeral",
                            "--cmdline", "expect_tpm=crb attest_nonce=0011"});
  EXPECT_NE(r.out.find("check attest: FAIL no AK certificate at NV 0x1c101c0"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("attest: quote "), std::string::npos) << "pieces printed after a failure";
  r = RunVmm({"--kernel", BinDir() + "/testguest.elf", "--tpm", "ephemeral", "--cmdline",
              "expect_tpm=crb attest_nonce=0x11"});
  EXPECT_NE(r.out.find("check attest: FAIL attest_nonce: want 1 to 32 bytes"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace vmm::testing
