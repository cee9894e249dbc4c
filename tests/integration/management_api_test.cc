// The management API of a running VM (ARCHITECTURE.md §8, README "Management API"): vm.info,
// pause and resume, counters, curl on the socket, and shutdown by the ACPI power button, both
// for a guest that powers off when it is pressed and for one that ignores it (stopped at the
// deadline). The authorisation by role is tested in tests/unit/manager/api_server_test.cc
// with two real uids. Needs /dev/kvm.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>

#include <sys/stat.h>

#include "base/sha256.h"
#include "tests/integration/background_vm.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/common/temp_dir.h"

namespace vmm::testing {
namespace {

constexpr char kUuid[] = "5b0c6f4e-8f2a-4c1d-9e3b-7a6d5c4b3a29";

std::string Sha256OfFile(const std::string& path) { return Sha256Hex(ReadText(path)); }

// `vmm policy init` for the test guest's 64-bit kernel into DIR/policy.json; returns its path.
std::string InitTestGuestPolicy(const testing_util::TempDir& d) {
  ProcessResult made = RunProcess({BinDir() + "/vmm", "policy", "init", "--out",
                                   d.File("policy.json"), "--kernel", BinDir() + "/testguest.elf"},
                                  60);
  EXPECT_EQ(made.exit_code, 0) << made.err;
  return d.File("policy.json");
}

// A run of `vmm run` that the policy refuses: the test guest's 32-bit kernel.
std::vector<std::string> RefusedRun(const testing_util::TempDir& d, const std::string& policy) {
  return {BinDir() + "/vmm", "run",
          "--policy",        policy,
          "--kernel",        BinDir() + "/testguest32.elf",
          "--audit-log",     d.File("audit.jsonl")};
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

// Roles from the launch policy, with real uids: the tenant of this VM attests (and reads its
// info) but cannot shut it down; a tenant bound to another VM gets nothing; root (admin) does
// everything, through curl too. Every call is in the audit log with its caller.
TEST(ManagementApiKvm, RolesFromThePolicyWithRealUids) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as other uids";
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs setpriv (util-linux)";
  constexpr char kTenant[] = "65534", kOtherTenant[] = "65533";
  testing_util::TempDir d("vmm-api-roles");
  ASSERT_EQ(chmod(d.path().c_str(), 0711), 0);
  const std::string vmm = BinDir() + "/vmm";
  ASSERT_EQ(mkdir(d.File("vtpm").c_str(), 0700), 0);
  const std::string tpm = "state=" + d.File("vtpm/state") + ",key=" + d.File("vtpm/key");
  ProcessResult provision = RunProcess(
      {vmm, "vtpm", "provision", "--vm", tpm, "--ca", d.File("ca"), "--vm-id", "roles"}, 120);
  ASSERT_EQ(provision.exit_code, 0) << provision.err;
  const std::vector<std::string> vm = {
      "--kernel", BinDir() + "/testguest.elf", "--tpm", tpm, "--cmdline", "linger=300"};
  std::vector<std::string> init = {vmm, "policy", "init", "--out", d.File("policy.json")};
  init.insert(init.end(), vm.begin(), vm.end());
  ProcessResult made = RunProcess(init, 60);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  nlohmann::json policy = nlohmann::json::parse(ReadText(d.File("policy.json")));
  policy["roles"] = nlohmann::json::array(
      {{{"uid", 0}, {"role", "admin"}},
       {{"uid", std::stoi(kTenant)}, {"role", "tenant"}, {"vm", "api-test"}},
       {{"uid", std::stoi(kOtherTenant)}, {"role", "tenant"}, {"vm", "another-vm"}}});
  std::ofstream(d.File("roles.json")) << policy.dump(2);

  std::vector<std::string> run = vm;
  run.insert(run.end(), {"--policy", d.File("roles.json"), "--api-socket", d.File("api.sock"),
                         "--api-socket-mode", "0666", "--name", "api-test", "--audit-log",
                         d.File("audit.jsonl")});
  BackgroundVm guest(run, d.File("serial.txt"), d.File("vmm.err"));
  std::string serial = guest.WaitForConsole(d.File("serial.txt"), "testguest: lingering");
  ASSERT_NE(serial.find("testguest: lingering"), std::string::npos)
      << serial << ReadText(d.File("vmm.err"));
  ASSERT_EQ(mkdir(d.File("out").c_str(), 0777), 0);
  ASSERT_EQ(chmod(d.File("out").c_str(), 0777), 0);
  auto as = [&](const char* uid, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/setpriv", std::string("--reuid=") + uid,
                                     std::string("--regid=") + uid, "--clear-groups", vmm};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, 60);
  };
  const std::string sock = d.File("api.sock");
  ProcessResult info = as(kTenant, {"ctl", "--api-socket", sock, "info"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  ProcessResult attest = as(kTenant, {"attest", "--api-socket", sock, "--nonce", "c0ffee", "--out",
                                      d.File("out/evidence.json")});
  EXPECT_EQ(attest.exit_code, 0) << attest.err;
  ProcessResult shutdown = as(kTenant, {"ctl", "--api-socket", sock, "shutdown"});
  EXPECT_EQ(shutdown.exit_code, 1);
  EXPECT_NE(shutdown.err.find("the tenant role may not call vm.shutdown (HTTP 403)"),
            std::string::npos)
      << shutdown.err;
  ProcessResult other = as(kOtherTenant, {"ctl", "--api-socket", sock, "info"});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("has no role on this VM's API (HTTP 403)"), std::string::npos)
      << other.err;
  if (access("/usr/bin/curl", X_OK) == 0) {
    ProcessResult curl = RunProcess({"/usr/bin/curl", "-s", "-w", "\n%{http_code}", "--unix-socket",
                                     sock, "http://localhost/api/v1/vm.info"},
                                    30);
    EXPECT_NE(curl.out.find("\n200"), std::string::npos) << curl.out;
  }
  ProcessResult down = RunProcess({vmm, "ctl", "--api-socket", sock, "shutdown"}, 30);
  EXPECT_EQ(down.exit_code, 0) << down.err;
  EXPECT_EQ(guest.Wait(60), 0) << ReadText(d.File("vmm.err"));

  // The audit log names each caller; it verifies intact.
  const std::string log = ReadText(d.File("audit.jsonl"));
  auto has = [&](const std::string& action, const char* uid, bool ok) {
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      auto rec = nlohmann::json::parse(line, nullptr, false);
      if (rec.is_object() && rec.value("action", "") == action &&
          rec["who"]["uid"] == std::stoul(uid) &&
          rec.value("result", "") == (ok ? "success" : "failure")) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has("attest", kTenant, true)) << log;
  EXPECT_TRUE(has("shutdown", kTenant, false)) << log;
  EXPECT_TRUE(has("info", kOtherTenant, false)) << log;
  EXPECT_TRUE(has("shutdown", "0", true)) << log;
  EXPECT_TRUE(has("start", "0", true)) << log;
  ProcessResult verify = RunProcess({vmm, "audit", "verify", d.File("audit.jsonl")}, 30);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// A kernel the launch policy does not list: vmm run refuses it naming the rule, exits 2, and
// the refusal is the start's record in the audit log (no /dev/kvm needed: nothing starts).
TEST(LaunchPolicyAudit, ARefusedStartIsInTheAuditLog) {
  testing_util::TempDir d("vmm-policy-audit");
  const std::string vmm = BinDir() + "/vmm";
  const std::string policy = InitTestGuestPolicy(d);
  ProcessResult run = RunProcess(RefusedRun(d, policy), 60);
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("refuses this VM: kernels: "), std::string::npos) << run.err;
  const std::string log = ReadText(d.File("audit.jsonl"));
  EXPECT_NE(log.find("\"action\":\"start\""), std::string::npos) << log;
  EXPECT_NE(log.find("kernels: "), std::string::npos) << log;
  EXPECT_NE(log.find("\"result\":\"failure\""), std::string::npos) << log;
  ProcessResult verify = RunProcess({vmm, "audit", "verify", d.File("audit.jsonl")}, 30);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// vmm itself killed (SIGKILL) at random moments while it writes its audit records, 180 times
// on one log, with 20 whole runs among them: `vmm audit verify` never finds tampering, only torn
// writes and sessions without their final checkpoint, which it explains (exit 0 or 3). The runs are
// refused starts (a kernel outside the policy), which write open, start and the final checkpoint
// without KVM.
TEST(LaunchPolicyAudit, VmmKilledWhileWritingNeverLeavesALogVerifyCannotExplain) {
  testing_util::TempDir d("vmm-audit-kill");
  const std::string vmm = BinDir() + "/vmm";
  const std::vector<std::string> refused = RefusedRun(d, InitTestGuestPolicy(d));
  // How long a whole refused run takes on this host now, at the fastest of three: the kills
  // land within that time (the host's load changes; the whole runs below cover a slower one).
  int64_t fastest_ms = 30000;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ProcessResult whole = RunProcess(refused, 30);
    EXPECT_EQ(whole.exit_code, 2) << whole.err;
    fastest_ms = std::min<int64_t>(
        fastest_ms,
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  }
  fastest_ms = std::max<int64_t>(fastest_ms, 1);
  unsigned seed = 12345;
  int killed = 0;
  for (int i = 0; i < 200; ++i) {
    if (i % 10 == 9) {
      // Every tenth run is left to finish, so that the log also holds whole sessions between
      // the torn ones, however slow the host has become since the runs were timed.
      ProcessResult whole = RunProcess(refused, 30);
      EXPECT_EQ(whole.exit_code, 2) << whole.err;
      continue;
    }
    seed = seed * 1103515245u + 12345u;
    // Within the middle of a run, where it opens the log and writes its records.
    const int after_ms =
        static_cast<int>(fastest_ms / 2 + (seed >> 16) % static_cast<unsigned>(fastest_ms));
    ProcessResult r = RunProcess(refused, 30, SIGKILL, after_ms);
    if (r.signal == SIGKILL) {
      ++killed;
    } else {
      EXPECT_EQ(r.exit_code, 2) << r.err;
    }
  }
  ProcessResult verify = RunProcess({vmm, "audit", "verify", d.File("audit.jsonl")}, 60);
  EXPECT_TRUE(verify.exit_code == 0 || verify.exit_code == 3) << verify.out << verify.err;
  EXPECT_EQ(verify.out.find("result: tampered"), std::string::npos) << verify.out;
  std::printf(
      "vmm killed %d times of 180 (0.5 to 1.5 times %lld ms, its fastest whole run, after its "
      "start); verify: exit %d\n",
      killed, static_cast<long long>(fastest_ms), verify.exit_code);
  EXPECT_GE(killed, 50) << "the kills did not land while vmm ran";
  // Sessions the log holds: runs that got as far as opening it (killed or not).
  size_t sessions = 0;
  for (size_t at = 0; (at = verify.out.find(" sessions", at)) != std::string::npos; ++at) {
    size_t start = verify.out.rfind(' ', at - 1);
    sessions = std::stoul(verify.out.substr(start + 1, at - start - 1));
    break;
  }
  std::printf("%s", verify.out.substr(0, verify.out.find('\n') + 1).c_str());
  EXPECT_GE(sessions, 50u) << "too few runs reached the log: " << verify.out;
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
