// The key broker end to end (README "Key broker"): the test guest runs with a provisioned vTPM,
// `vmm-verify serve` holds a secret, and `vmm attest --broker` quotes through the manager's API
// to get it. Affirming evidence gets the secret, through a relay that records every byte and
// never sees it; a broker whose policy lists another kernel withholds it and logs why; the
// recorded attestation replayed, a challenge answered after it expired, and evidence bound to
// another key are refused. Needs /dev/kvm.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "attestation/broker_io.h"
#include "attestation/broker_protocol.h"
#include "base/hex.h"
#include "base/unix_socket.h"
#include "tests/integration/background_vm.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/common/temp_dir.h"

extern char** environ;

namespace vmm::testing {
namespace {

using attestation::BrokerAddress;

// `vmm-verify serve ARGS` in the background, stderr to a file; SIGTERM when out of scope.
class Broker {
 public:
  Broker(const std::vector<std::string>& args, const std::string& socket, const std::string& err) {
    pid_ = SpawnInBackground("vmm-verify", "serve", args, "/dev/null", err);
    for (int i = 0; i < 100 && pid_ > 0; ++i) {  // until the socket exists
      struct stat st {};
      if (stat(socket.c_str(), &st) == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~Broker() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

// Listens on `path` and copies bytes between each client and the broker at `target`,
// recording all of them, until stopped.
class RecordingRelay {
 public:
  RecordingRelay(const std::string& path, std::string target) : target_(std::move(target)) {
    auto l = ListenUnix(path, 8);
    if (l) listener_ = std::move(*l);
    thread_ = std::thread([this] { Run(); });
  }
  ~RecordingRelay() {
    stop_ = true;
    thread_.join();
  }
  std::string recorded() {
    std::lock_guard lock(mu_);
    return recorded_;
  }

 private:
  void Run() {
    while (!stop_ && listener_.valid()) {
      pollfd p{listener_.get(), POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      UniqueFd client = AcceptConnection(listener_.get());
      auto address = attestation::ParseBrokerAddress(target_);
      if (!client.valid() || !address) continue;
      auto server = attestation::ConnectBroker(
          *address, std::chrono::steady_clock::now() + std::chrono::seconds(5));
      if (!server) continue;
      Copy(client.get(), server->get());
    }
  }
  void Copy(int a, int b) {
    bool a_open = true, b_open = true;
    while (a_open || b_open) {
      pollfd p[2] = {{a, static_cast<short>(a_open ? POLLIN : 0), 0},
                     {b, static_cast<short>(b_open ? POLLIN : 0), 0}};
      if (poll(p, 2, 30000) <= 0) return;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[65536];
        const ssize_t n = read(p[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          shutdown(i == 0 ? b : a, SHUT_WR);
          (i == 0 ? a_open : b_open) = false;
          continue;
        }
        {
          std::lock_guard lock(mu_);
          recorded_.append(buf, static_cast<size_t>(n));
        }
        const int to = i == 0 ? b : a;
        for (ssize_t done = 0; done < n;) {
          const ssize_t w = write(to, buf + done, static_cast<size_t>(n - done));
          if (w <= 0) return;
          done += w;
        }
      }
    }
  }

  std::string target_;
  UniqueFd listener_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string recorded_;
  std::thread thread_;
};

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Flags that do not make a broker or a client: exit 2 and a message naming the flag, before any
// socket is bound or any VM is asked.
TEST(BrokerCli, UsageErrorsExit2NamingTheFlag) {
  testing_util::TempDir d("vmm-broker-cli");
  std::ofstream(d.File("s")) << "x";
  const std::string verify = BinDir() + "/vmm-verify", vmm = BinDir() + "/vmm";
  struct Case {
    std::vector<std::string> argv;
    std::string message;
  };
  const std::vector<std::string> serve = {
      verify, "serve", "--policy", d.File("none.json"), "--ca", d.File("none.pem")};
  auto with = [](std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  for (const Case& c : std::vector<Case>{
           {with(serve, {"--listen", "tcp:localhost:1", "--secret", "a=" + d.File("s")}),
            "is not a numeric IPv4 address"},
           {with(serve, {"--listen", "unix:" + d.File("b.sock"), "--secret", "a=" + d.File("s")}),
            "cannot open"},
           {with(serve, {"--listen", "unix:" + d.File("b.sock")}), "--secret is required"},
           {{vmm, "attest", "--api-socket", d.File("api.sock"), "--broker",
             "unix:" + d.File("b.sock"), "--secret", "disk"},
            "go together"},
           {{vmm, "attest", "--api-socket", d.File("api.sock"), "--broker",
             "unix:" + d.File("b.sock"), "--secret", "../disk", "--secret-out", d.File("o")},
            "--secret: a secret's name may hold only"},
           {{vmm, "attest", "--api-socket", d.File("api.sock"), "--broker", "unix:" + d.File("b"),
             "--secret", "disk", "--secret-out", d.File("o"), "--nonce", "00"},
            "--nonce and --out are for a bundle"},
           {{vmm, "attest", "--api-socket", d.File("api.sock")}, "--nonce and --out are required"},
       }) {
    ProcessResult r = RunProcess(c.argv, 30);
    EXPECT_EQ(r.exit_code, 2) << c.argv[1] << " " << c.message << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, c.message)) << r.err;
  }
  EXPECT_NE(access(d.File("o").c_str(), F_OK), 0);
  // A secret file larger than the limit.
  std::ofstream(d.File("big")) << std::string(attestation::kMaxSecretBytes + 1, 'x');
  ProcessResult big = RunProcess(
      with(serve, {"--listen", "unix:" + d.File("b.sock"), "--secret", "a=" + d.File("big")}), 30);
  EXPECT_EQ(big.exit_code, 2);
  EXPECT_TRUE(Contains(big.err, "larger than 65536 bytes")) << big.err;
}

TEST(BrokerKvm, ReleasesOnlyToAffirmingFreshEvidenceBoundToTheClientsKey) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  testing_util::TempDir d("vmm-broker");
  ASSERT_EQ(mkdir(d.File("vtpm").c_str(), 0700), 0);
  const std::string tpm = "state=" + d.File("vtpm/state") + ",key=" + d.File("vtpm/key");
  const std::string vmm = BinDir() + "/vmm", ca_cert = d.File("ca/vtpm-ca.crt");
  ProcessResult provision = RunProcess(
      {vmm, "vtpm", "provision", "--vm", tpm, "--ca", d.File("ca"), "--vm-id", "broker"}, 120);
  ASSERT_EQ(provision.exit_code, 0) << provision.err;
  const std::vector<std::string> vm = {"--kernel",  BinDir() + "/testguest.elf", "--tpm", tpm,
                                       "--cmdline", "expect_tpm=crb linger=90"};
  std::vector<std::string> measure = {vmm, "measure", "--policy-out", d.File("policy.json")};
  measure.insert(measure.end(), vm.begin(), vm.end());
  ProcessResult policy = RunProcess(measure, 60);
  ASSERT_EQ(policy.exit_code, 0) << policy.err;
  // The same policy with another kernel's digest.
  auto other = nlohmann::json::parse(ReadText(d.File("policy.json")), nullptr, false);
  ASSERT_FALSE(other.is_discarded());
  other["kernel"] = {{"sha256", {std::string(64, '0')}}};
  std::ofstream(d.File("other-kernel.json")) << other.dump(2);

  const std::string secret = "broker-secret-" + std::to_string(getpid()) + "-do-not-leak";
  std::ofstream(d.File("secret.bin")) << secret;
  const std::string sock = d.File("broker.sock"), bad_sock = d.File("bad.sock");
  Broker broker({"--listen", "unix:" + sock, "--policy", d.File("policy.json"), "--ca", ca_cert,
                 "--secret", "disk=" + d.File("secret.bin"), "--log", d.File("broker.log")},
                sock, d.File("broker.err"));
  // Its challenges live 1 s: for the expired one (the main broker's 60 s leave slow hosts room).
  const std::string short_sock = d.File("short.sock");
  Broker short_lived({"--listen", "unix:" + short_sock, "--policy", d.File("policy.json"), "--ca",
                      ca_cert, "--secret", "disk=" + d.File("secret.bin"), "--nonce-lifetime", "1"},
                     short_sock, d.File("short.err"));
  Broker bad({"--listen", "unix:" + bad_sock, "--policy", d.File("other-kernel.json"), "--ca",
              ca_cert, "--secret", "disk=" + d.File("secret.bin"), "--log", d.File("bad.log")},
             bad_sock, d.File("bad.err"));
  ASSERT_TRUE(broker.started() && bad.started() && short_lived.started());
  RecordingRelay relay(d.File("relay.sock"), "unix:" + sock);

  std::vector<std::string> run = vm;
  run.insert(run.end(), {"--api-socket", d.File("api.sock")});
  BackgroundVm guest(run, d.File("serial.txt"), d.File("vmm.err"));
  ASSERT_TRUE(guest.started());
  std::string serial;
  for (int i = 0; i < 1200; ++i) {  // 120 s: kvm_pvm hosts run the guest's hashing slowly
    serial = ReadText(d.File("serial.txt"));
    if (Contains(serial, "testguest: result") || !guest.running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(Contains(serial, "testguest: result")) << serial << ReadText(d.File("vmm.err"));

  auto attest = [&](const std::string& address, const std::string& out) {
    return RunProcess({vmm, "attest", "--api-socket", d.File("api.sock"), "--ca", d.File("ca"),
                       "--broker", address, "--secret", "disk", "--secret-out", out},
                      60);
  };
  // Through the relay: released, and the relay saw only ciphertext.
  ProcessResult ok = attest("unix:" + d.File("relay.sock"), d.File("got.bin"));
  ASSERT_EQ(ok.exit_code, 0) << ok.err << ReadText(d.File("broker.err"));
  EXPECT_EQ(ReadText(d.File("got.bin")), secret);
  const std::string recorded = relay.recorded();
  EXPECT_TRUE(Contains(recorded, "\"ciphertext\"")) << recorded.size();
  EXPECT_FALSE(Contains(recorded, secret)) << "the relay saw the secret";
  EXPECT_FALSE(Contains(recorded, secret.substr(0, 12)));
  EXPECT_TRUE(Contains(ReadText(d.File("broker.log")), "\"verdict\":\"released\""));

  // A kernel outside the policy: nothing, and the log says why.
  ProcessResult refused = attest("unix:" + bad_sock, d.File("nothing.bin"));
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_TRUE(Contains(refused.err, "withheld the secret (contraindicated)")) << refused.err;
  EXPECT_NE(access(d.File("nothing.bin").c_str(), F_OK), 0);
  const std::string bad_log = ReadText(d.File("bad.log"));
  EXPECT_TRUE(Contains(bad_log, "\"verdict\":\"withheld (contraindicated)\"")) << bad_log;
  EXPECT_TRUE(Contains(bad_log, "failed policy-kernel")) << bad_log;

  // The relay's recording of the attestation, sent again: the nonce is spent.
  std::string attestation_frame;
  for (size_t pos = 0; pos + 4 <= recorded.size();) {
    const auto* h = reinterpret_cast<const uint8_t*>(recorded.data() + pos);
    const size_t len = size_t{h[0]} << 24 | size_t{h[1]} << 16 | size_t{h[2]} << 8 | h[3];
    if (pos + 4 + len > recorded.size()) break;
    std::string body = recorded.substr(pos + 4, len);
    auto type = attestation::MessageType(
        std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
    if (type && *type == "attestation") attestation_frame = body;
    pos += 4 + len;
  }
  ASSERT_FALSE(attestation_frame.empty()) << "no attestation in the relay's recording";
  auto address = attestation::ParseBrokerAddress("unix:" + sock);
  ASSERT_TRUE(address.has_value());
  auto replay = attestation::Exchange(*address, attestation_frame, 30);
  ASSERT_TRUE(replay.has_value()) << replay.error().message();
  EXPECT_TRUE(Contains(*replay, "already used")) << *replay;

  // A challenge answered after its 1 s, and evidence bound to another key.
  auto short_address = attestation::ParseBrokerAddress("unix:" + short_sock);
  ASSERT_TRUE(short_address.has_value());
  auto answer_challenge = [&](const BrokerAddress& to, bool other_key, int wait_s) -> std::string {
    auto challenge_text = attestation::Exchange(to, attestation::SerializeRequest({"disk"}), 30);
    if (!challenge_text) return challenge_text.error().message();
    auto challenge = attestation::ParseChallenge(std::span(
        reinterpret_cast<const uint8_t*>(challenge_text->data()), challenge_text->size()));
    if (!challenge) return challenge.error().message();
    auto key = attestation::NewEphemeralKey();
    auto wrong = attestation::NewEphemeralKey();
    auto point = attestation::PublicPoint(key->get());
    auto wrong_point = attestation::PublicPoint(wrong->get());
    const auto binding =
        attestation::BindingData(challenge->nonce, other_key ? *wrong_point : *point);
    const std::string out = d.File("ev-" + std::to_string(other_key) + ".json");
    ProcessResult q = RunProcess({vmm, "attest", "--api-socket", d.File("api.sock"), "--ca",
                                  d.File("ca"), "--nonce", HexBytes(binding), "--out", out},
                                 60);
    if (q.exit_code != 0) return "vmm attest: " + q.err;
    std::this_thread::sleep_for(std::chrono::seconds(wait_s));
    const std::string evidence = ReadText(out);
    attestation::AttestationMessage m{"disk", challenge->nonce, *point,
                                      std::vector<uint8_t>(evidence.begin(), evidence.end())};
    auto r = attestation::Exchange(to, attestation::SerializeAttestation(m), 30);
    return r ? *r : r.error().message();
  };
  const std::string expired = answer_challenge(*short_address, false, 2);
  EXPECT_TRUE(Contains(expired, "nonce expired")) << expired;
  const std::string wrong_key = answer_challenge(*address, true, 0);
  EXPECT_TRUE(Contains(wrong_key, "failed nonce")) << wrong_key;
  EXPECT_FALSE(Contains(wrong_key, "\"sealed\"")) << wrong_key;
  guest.Stop();

  // Every decision is one JSON line.
  std::ifstream log(d.File("broker.log"));
  int lines = 0;
  for (std::string line; std::getline(log, line); ++lines) {
    auto doc = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(doc.is_object()) << line;
    for (const char* key : {"time", "peer", "secret", "nonce_sha256", "verdict", "reason", "ear"}) {
      EXPECT_TRUE(doc.contains(key)) << key << " in " << line;
    }
  }
  EXPECT_EQ(lines, 3);  // released, replay, wrong key
}

}  // namespace
}  // namespace vmm::testing
