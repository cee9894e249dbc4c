// Times the tenant's verification of one evidence bundle through attestation/verify.h, as
// vmm-verify runs it (the bundle's bytes in, the verdict out), single-threaded.
//
//   verify_bench make --dir DIR
//     -> a synthetic bundle from the software TPM of the unit tests (fake_tpm.h): DIR/ca.pem,
//        DIR/evidence.json, DIR/policy.json (the policy of its log), DIR/nonce (hex)
//   verify_bench run --evidence E --ca CA --nonce HEX [--policy P] [--seconds 2] [--only NAME]
//   -> verify_bench: verdict=affirming cached_result=same
//      verify_bench: name=parse reps=... cpu_s=... wall_s=... per_cpu_s=... us=...
//      (names: parse, signature, ak+signature, verify-uncached, verify-cached, checks-cached)
//
// parse: ParseEvidence of the bundle's JSON. signature: VerifyQuoteSignature with the AK
// already parsed (one ECDSA or RSA verification and the TPMT_SIGNATURE's unmarshalling).
// ak+signature: ParseAkPublic (the TPMT_PUBLIC into an EVP_PKEY) and the same. verify-uncached:
// VerifyBundle with every check in full (the AK and EK certificate chains verified each time).
// verify-cached: VerifyBundle with a ChainCache that already holds this bundle's certificates.
// checks-cached: the same without the JSON (Verify of the bundle parsed once).
// Each figure: one untimed warm-up, then calls until --seconds of this process's CPU time
// (user and system) have passed; per_cpu_s = calls per CPU second, one thread, so per core.
// Before timing, the cached and uncached results must be the same text.
// Exit status: 0; 1 when the bundle does not verify the same way with and without the cache, or
// a step fails; 2 usage.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attestation/chain_cache.h"
#include "attestation/quote.h"
#include "attestation/verify.h"
#include "base/hex.h"
#include "tests/unit/attestation/fake_tpm.h"

namespace {

using vmm::attestation::ChainCache;
using vmm::attestation::VerifyOptions;
using vmm::attestation::VerifyResult;

// This process's CPU time, user and system: glibc's clock() reads CLOCK_PROCESS_CPUTIME_ID.
double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

std::optional<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

int Usage() {
  std::fprintf(stderr,
               "usage: verify_bench make --dir DIR\n"
               "       verify_bench run --evidence FILE --ca CERT --nonce HEX [--policy FILE] "
               "[--seconds S] [--only NAME]\n");
  return 2;
}

int Fail(const std::string& why) {
  std::fprintf(stderr, "verify_bench: %s\n", why.c_str());
  return 1;
}

int Make(const std::string& dir) {
  namespace fake = vmm::attestation::fake;
  try {
    fake::FakeTpm tpm;
    fake::TestCa ca("verify_bench vTPM CA");
    fake::Bytes nonce(16);
    for (size_t i = 0; i < nonce.size(); ++i) nonce[i] = static_cast<uint8_t>(0xa0 + i);
    vmm::attestation::Evidence e = fake::MakeEvidence(tpm, ca, nonce, {});
    const vmm::attestation::Policy policy = fake::PolicyOfLog(e.event_log, "verify-bench");
    if (!WriteText(dir + "/ca.pem", ca.pem()) ||
        !WriteText(dir + "/evidence.json", vmm::attestation::SerializeEvidence(e)) ||
        !WriteText(dir + "/policy.json", vmm::attestation::SerializePolicy(policy)) ||
        !WriteText(dir + "/nonce", vmm::HexBytes(nonce) + "\n")) {
      return Fail("cannot write into " + dir);
    }
  } catch (const std::exception& ex) {
    return Fail(ex.what());
  }
  return 0;
}

// One untimed call, then calls until `seconds` of CPU time; prints one line.
std::string only;  // --only NAME: time just that figure (for a profiler)

bool Time(const char* name, double seconds, const std::function<bool()>& op) {
  if (!only.empty() && only != name) return true;
  if (!op()) return false;
  long reps = 0;
  const double cpu0 = CpuSeconds();
  const auto wall0 = std::chrono::steady_clock::now();
  double cpu = 0;
  do {
    if (!op()) return false;
    ++reps;
    cpu = CpuSeconds() - cpu0;
  } while (cpu < seconds);
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf(
      "verify_bench: name=%s reps=%ld cpu_s=%.4f wall_s=%.4f per_cpu_s=%.1f per_wall_s=%.1f "
      "us=%.2f\n",
      name, reps, cpu, wall, static_cast<double>(reps) / cpu, static_cast<double>(reps) / wall,
      1e6 * cpu / static_cast<double>(reps));
  std::fflush(stdout);
  return true;
}

int Run(const std::string& evidence_path, const std::string& ca_path, const std::string& nonce_hex,
        const std::string& policy_path, double seconds) {
  using namespace vmm::attestation;  // NOLINT: the verifier's API
  auto bundle = ReadText(evidence_path);
  auto ca = ReadText(ca_path);
  if (!bundle || !ca) return Fail("cannot read " + (bundle ? ca_path : evidence_path));
  auto nonce = vmm::ParseHexBytes(nonce_hex);
  if (!nonce) return Fail("--nonce is not hex");
  std::optional<Policy> policy;
  if (!policy_path.empty()) {
    auto text = ReadText(policy_path);
    if (!text) return Fail("cannot read " + policy_path);
    auto parsed = ParsePolicy(Bytes(*text));
    if (!parsed) return Fail(policy_path + ": " + parsed.error().message());
    policy = std::move(*parsed);
  }
  auto evidence = ParseEvidence(Bytes(*bundle));
  if (!evidence) return Fail(evidence_path + ": " + evidence.error().message());
  auto ak = ParseAkPublic(evidence->ak_public);
  if (!ak) return Fail("the AK: " + ak.error().message());

  ChainCache cache;
  VerifyOptions plain;
  plain.ca_pem = *ca;
  plain.nonce = *nonce;
  plain.policy = policy ? &*policy : nullptr;
  VerifyOptions cached = plain;
  cached.chain_cache = &cache;

  VerifyResult a = VerifyBundle(Bytes(*bundle), plain);
  VerifyResult miss = VerifyBundle(Bytes(*bundle), cached);
  VerifyResult hit = VerifyBundle(Bytes(*bundle), cached);
  const std::string text = ResultToText(a);
  if (ResultToText(miss) != text || ResultToText(hit) != text || cache.hits() != 1) {
    return Fail("the results with and without the chain cache differ (or it did not hit):\n" +
                text + "--- cached:\n" + ResultToText(hit));
  }
  std::printf("verify_bench: verdict=%s cached_result=same\n",
              std::string(EarStatusName(a.status)).c_str());
  if (a.status == EarStatus::kContraindicated) {
    std::fprintf(stderr, "%s", text.c_str());
    return Fail("the bundle does not verify");
  }

  const EarStatus want = a.status;
  bool ok =
      Time("parse", seconds, [&] { return ParseEvidence(Bytes(*bundle)).has_value(); }) &&
      Time("signature", seconds,
           [&] {
             return VerifyQuoteSignature(*ak, evidence->attest, evidence->signature).has_value();
           }) &&
      Time("ak+signature", seconds,
           [&] {
             auto k = ParseAkPublic(evidence->ak_public);
             return k && VerifyQuoteSignature(*k, evidence->attest, evidence->signature);
           }) &&
      Time("verify-uncached", seconds,
           [&] { return VerifyBundle(Bytes(*bundle), plain).status == want; }) &&
      Time("verify-cached", seconds,
           [&] { return VerifyBundle(Bytes(*bundle), cached).status == want; }) &&
      Time("checks-cached", seconds, [&] { return Verify(*evidence, cached).status == want; });
  if (!ok) return Fail("a timed call failed");
  if (only.empty() && cache.misses() != 1)
    return Fail("the chain cache missed during the cached run");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  std::string mode = argv[1];
  std::string dir, evidence, ca, nonce, policy, seconds_text = "2";
  const std::map<std::string_view, std::string*> flags = {{"--dir", &dir},
                                                          {"--evidence", &evidence},
                                                          {"--ca", &ca},
                                                          {"--nonce", &nonce},
                                                          {"--only", &only},
                                                          {"--policy", &policy},
                                                          {"--seconds", &seconds_text}};
  for (int i = 2; i < argc; i += 2) {
    auto flag = flags.find(argv[i]);
    if (flag == flags.end() || i + 1 >= argc) return Usage();
    *flag->second = argv[i + 1];
  }
  char* end = nullptr;
  const double seconds = std::strtod(seconds_text.c_str(), &end);
  if (*end != '\0' || !(seconds > 0) || seconds > 600) return Usage();
  if (mode == "make" && !dir.empty()) return Make(dir);
  if (mode == "run" && !evidence.empty() && !ca.empty() && !nonce.empty()) {
    return Run(evidence, ca, nonce, policy, seconds);
  }
  return Usage();
}
