// The management API of a running VM (ARCHITECTURE.md §8, README "Management API"): vm.info,
// pause and resume, counters, curl on the socket, and shutdown by the ACPI power button, both
// for a guest that powers off when it is pressed and for one that ignores it (stopped at the
// deadline). The authorisation by role is tested in tests/unit/manager/api_server_test.cc
// with two real uids. Needs /dev/kvm.
#include <openssl/evp.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iterator>

#include "tests/integration/background_vm.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/common/temp_dir.h"

namespace vmm::testing {
namespace {

constexpr char kUuid[] = "5b0c6f4e-8f2a-4c1d-9e3b-7a6d5c4b3a29";

std::string Sha256OfFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += digits[md[i] >> 4];
    hex += digits[md[i] & 15];
  }
  return hex;
}

// Boots the test guest so that it lingers, with an API socket; waits for its result line.
struct LingeringVm {
  testing_util::TempDir dir{"vmm-api-vm"};
  std::string sock = dir.File("api.sock");
  std::unique_ptr<BackgroundVm> vm;

  bool Start(const std::string& cmdline) {
    vm = std::make_unique<BackgroundVm>(
        std::vector<std::string>{"--kernel", BinDir() + "/testguest.elf", "--cmdline", cmdline,
                                 "--api-socket", sock, "--name", "api-test", "--uuid", kUuid},
        dir.File("serial.txt"), dir.File("vmm.err"));
    for (int i = 0; i < 1200 && vm->started(); ++i) {  // 120 s
      if (ReadText(dir.File("serial.txt")).find("testguest: lingering") != std::string::npos) {
        return true;
      }
      if (!vm->running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  ProcessResult Ctl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BinDir() + "/vmm", "ctl", "--api-socket", sock};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, 30);
  }
  nlohmann::json CtlJson(const std::vector<std::string>& args) {
    ProcessResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  std::string Log() {
    return ReadText(dir.File("serial.txt")) + "\n--- vmm stderr ---\n" +
           ReadText(dir.File("vmm.err"));
  }
};

TEST(ManagementApiKvm, InfoPauseResumeCountersCurlAndShutdownByThePowerButton) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  LingeringVm t;
  ASSERT_TRUE(t.Start("linger=300")) << t.Log();

  nlohmann::json info = t.CtlJson({"info"});
  EXPECT_EQ(info["name"], "api-test");
  EXPECT_EQ(info["uuid"], kUuid);
  EXPECT_EQ(info["state"], "running");
  EXPECT_EQ(info["kernel_sha256"], Sha256OfFile(BinDir() + "/testguest.elf"));
  EXPECT_EQ(info["config"]["cpus"], 1);

  EXPECT_EQ(t.CtlJson({"pause"})["state"], "paused");
  ProcessResult again = t.Ctl({"pause"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("(HTTP 409)"), std::string::npos) << again.err;
  EXPECT_EQ(t.CtlJson({"info"})["state"], "paused");
  EXPECT_EQ(t.CtlJson({"resume"})["state"], "running");

  nlohmann::json counters = t.CtlJson({"counters"});
  EXPECT_EQ(counters["lifecycle"]["pause"], 1);
  EXPECT_EQ(counters["lifecycle"]["resume"], 1);
  EXPECT_EQ(counters["lifecycle"]["refused"], 1);
  EXPECT_EQ(counters["api"]["vm.pause"]["409"], 1);

  // Any HTTP client on the socket: curl, as operators use it with Firecracker's.
  if (access("/usr/bin/curl", X_OK) == 0) {
    ProcessResult curl = RunProcess(
        {"/usr/bin/curl", "-s", "--unix-socket", t.sock, "http://localhost/api/v1/vm.info"}, 30);
    EXPECT_EQ(curl.exit_code, 0) << curl.err;
    EXPECT_EQ(nlohmann::json::parse(curl.out, nullptr, false)["uuid"], kUuid) << curl.out;
  }
  // No vTPM: nothing to export.
  ProcessResult ek = t.Ctl({"ek"});
  EXPECT_EQ(ek.exit_code, 1);
  EXPECT_NE(ek.err.find("no vTPM"), std::string::npos) << ek.err;

  const auto pressed = std::chrono::steady_clock::now();
  nlohmann::json down = t.CtlJson({"shutdown", "--deadline-sec", "120"});
  EXPECT_EQ(down["state"], "shutting-down");
  EXPECT_EQ(t.vm->Wait(120), 0) << t.Log();
  EXPECT_LT(std::chrono::steady_clock::now() - pressed, std::chrono::seconds(60))
      << "the guest waited for the deadline instead of the button";
  EXPECT_NE(ReadText(t.dir.File("serial.txt")).find("testguest: power button pressed"),
            std::string::npos)
      << t.Log();
}

TEST(ManagementApiKvm, AGuestThatIgnoresThePowerButtonIsStoppedAtTheDeadline) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  LingeringVm t;
  ASSERT_TRUE(t.Start("linger=300 power_button=ignore")) << t.Log();
  EXPECT_EQ(t.CtlJson({"pause"})["state"], "paused");  // shutdown resumes it first
  EXPECT_EQ(t.CtlJson({"shutdown", "--deadline-sec", "2"})["state"], "shutting-down");
  ProcessResult twice = t.Ctl({"shutdown"});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.err.find("already shutting down"), std::string::npos) << twice.err;
  EXPECT_EQ(t.vm->Wait(60), 128 + SIGTERM) << t.Log();
  const std::string err = ReadText(t.dir.File("vmm.err"));
  EXPECT_NE(err.find("did not power off before the shutdown deadline"), std::string::npos) << err;
  EXPECT_EQ(ReadText(t.dir.File("serial.txt")).find("power button pressed"), std::string::npos);
}

}  // namespace
}  // namespace vmm::testing
