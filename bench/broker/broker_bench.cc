// Times the key broker's release of a secret (attestation/broker.h), single-threaded: for each
// of COUNT challenges from an in-process KeyBroker, `vmm attest` quotes a running VM with
// SHA-256(nonce || a fresh client key) as its nonce (untimed); then every attestation message is
// handed to KeyBroker::Handle (verify the bundle against the CA and policy, seal the secret to
// the client's key, log line) under this thread's CPU clock, and each answer is opened with the
// client's key (untimed) to check the release.
//
//   broker_bench --vmm BIN/vmm --api-socket S --ca-dir D --ca CA --policy P --count N --out DIR
//   -> broker_bench: name=release count=N cpu_s=... per_cpu_s=... us=... released=N
//      DIR/evidence.json and DIR/nonce: the first bundle and its qualifying data (hex), for the
//      peer (vmm-verify, a process per bundle)
// Exit status: 0; 1 when a quote or a release fails; 2 usage.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/broker.h"
#include "attestation/broker_protocol.h"
#include "base/hex.h"

extern char** environ;

namespace {

using namespace vmm::attestation;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int Run(std::vector<std::string> argv) {
  std::vector<char*> c;
  for (std::string& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  pid_t pid = 0;
  posix_spawn_file_actions_t fa;  // its "wrote FILE" line on stderr, once per round, is noise
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  const int rc = posix_spawn(&pid, c[0], &fa, nullptr, c.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double ThreadCpu() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string vmm, api, ca_dir, ca, policy_path, out;
  int count = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--vmm")
      vmm = value;
    else if (flag == "--api-socket")
      api = value;
    else if (flag == "--ca-dir")
      ca_dir = value;
    else if (flag == "--ca")
      ca = value;
    else if (flag == "--policy")
      policy_path = value;
    else if (flag == "--out")
      out = value;
    else if (flag == "--count")
      count = std::atoi(value.c_str());
  }
  if (vmm.empty() || api.empty() || ca.empty() || policy_path.empty() || out.empty() ||
      count <= 0) {
    std::fprintf(stderr,
                 "usage: broker_bench --vmm BIN --api-socket S --ca-dir D --ca CA --policy P "
                 "--count N --out DIR\n");
    return 2;
  }
  const std::string policy_text = ReadAll(policy_path);
  auto policy = ParsePolicy(Span(policy_text));
  if (!policy) {
    std::fprintf(stderr, "broker_bench: %s\n", policy.error().message().c_str());
    return 2;
  }
  BrokerConfig config;
  config.ca_pem = ReadAll(ca);
  config.policy = std::move(*policy);
  const std::vector<uint8_t> secret(32, 0x5a);
  config.secrets["bench"] = secret;
  config.nonce_lifetime = std::chrono::seconds(3600);
  config.max_outstanding = static_cast<size_t>(count) + 1;
  KeyBroker broker(std::move(config));

  struct Round {
    std::vector<uint8_t> nonce;
    vmm::EvpPkeyPtr key;
    std::string message;
  };
  std::vector<Round> rounds;
  for (int i = 0; i < count; ++i) {
    BrokerAnswer a =
        broker.Handle(Span(SerializeRequest({"bench"})), "bench", KeyBroker::Clock::now());
    auto challenge = ParseChallenge(Span(a.body));
    auto key = NewEphemeralKey();
    if (!challenge || !key) {
      std::fprintf(stderr, "broker_bench: no challenge: %s\n", a.body.c_str());
      return 1;
    }
    auto point = PublicPoint(key->get());
    const std::vector<uint8_t> binding = BindingData(challenge->nonce, *point);
    const std::string file = out + "/evidence-" + std::to_string(i) + ".json";
    std::vector<std::string> cmd = {
        vmm, "attest", "--api-socket", api, "--nonce", vmm::HexBytes(binding), "--out", file};
    if (!ca_dir.empty()) cmd.insert(cmd.end(), {"--ca", ca_dir});
    if (Run(cmd) != 0) {
      std::fprintf(stderr, "broker_bench: vmm attest failed for round %d\n", i);
      return 1;
    }
    const std::string evidence = ReadAll(file);
    if (i == 0) {
      std::ofstream(out + "/evidence.json") << evidence;
      std::ofstream(out + "/nonce") << vmm::HexBytes(binding) << "\n";
    }
    AttestationMessage m{"bench", challenge->nonce, *point,
                         std::vector<uint8_t>(evidence.begin(), evidence.end())};
    rounds.push_back({challenge->nonce, std::move(*key), SerializeAttestation(m)});
  }

  std::vector<std::string> answers(rounds.size());
  const double start = ThreadCpu();
  for (size_t i = 0; i < rounds.size(); ++i) {
    answers[i] = broker.Handle(Span(rounds[i].message), "bench", KeyBroker::Clock::now()).body;
  }
  const double cpu = ThreadCpu() - start;

  int released = 0;
  for (size_t i = 0; i < rounds.size(); ++i) {
    auto response = ParseResponse(Span(answers[i]));
    if (!response || !response->sealed) {
      std::fprintf(stderr, "broker_bench: round %zu not released: %s\n", i,
                   response ? response->reason.c_str() : response.error().message().c_str());
      return 1;
    }
    auto opened = OpenSecret(*response->sealed, rounds[i].key.get(), rounds[i].nonce, "bench");
    if (!opened || *opened != secret) {
      std::fprintf(stderr, "broker_bench: round %zu does not open\n", i);
      return 1;
    }
    ++released;
  }
  std::printf("broker_bench: name=release count=%d cpu_s=%.6f per_cpu_s=%.1f us=%.1f released=%d\n",
              count, cpu, count / cpu, 1e6 * cpu / count, released);
  return 0;
}
