// vmm-verify: the tenant's verifier (README "Verifying evidence (tenants)"). It links OpenSSL,
// tss2-mu, nlohmann-json and attestation/ only, nothing of the VMM (ARCHITECTURE.md §7), so a
// tenant can build and run it on a machine of their own.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>
#include "base/cli.h"

#include "attestation/appraisal.h"
#include "attestation/broker.h"
#include "attestation/broker_io.h"
#include "attestation/broker_server.h"
#include "attestation/cert_checks.h"
#include "attestation/ear.h"
#include "attestation/evidence.h"
#include "attestation/guest_evidence.h"
#include "attestation/ossl.h"
#include "attestation/tpm2_files.h"
#include "attestation/verify.h"
#include "base/version.h"

namespace vmm::attestation {
namespace {

constexpr int kExitAffirming = 0;
constexpr int kExitNotAffirming = 1;  // also: unpack/pack input that is not valid evidence
constexpr int kExitUsage = 2;

int Usage(const std::string& message) {
  std::fprintf(stderr, "vmm-verify: %s\n", message.c_str());
  return kExitUsage;
}

// Reads at most `max` bytes (one more is read to tell "too large" apart).
Result<std::vector<uint8_t>> ReadFile(const std::string& path, size_t max) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open " + path);
  std::vector<uint8_t> data;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error err = ErrnoError("cannot read " + path);
      close(fd);
      return err;
    }
    if (n == 0) break;
    data.insert(data.end(), buf, buf + n);
    if (data.size() > max) break;
  }
  close(fd);
  return data;
}

Result<void> WriteFile(const std::string& path, std::span<const uint8_t> data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error err = ErrnoError("cannot write " + path);
      close(fd);
      return err;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return ErrnoError("cannot write " + path);
  return Ok();
}

Result<void> WriteText(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return Ok();
  }
  return WriteFile(
      path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

Result<std::vector<uint8_t>> ParseHex(const std::string& text) {
  if (text.size() % 2 != 0 || text.size() > 128) {
    return InvalidArgument("--nonce: give 0 to 64 bytes as an even number of hex digits");
  }
  std::vector<uint8_t> out;
  for (size_t i = 0; i < text.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nib(text[i]), lo = nib(text[i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgument("--nonce: \"" + text + "\" is not hex");
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

struct VerifyFlags {
  std::string evidence, ca, policy, nonce, sign_key, out, format = "text";
  std::optional<int64_t> at;
};

int RunVerify(const VerifyFlags& f) {
  if (f.format == "jwt" && f.sign_key.empty()) return Usage("--format jwt needs --sign-key");
  auto nonce = ParseHex(f.nonce);
  if (!nonce) return Usage(nonce.error().message());
  auto ca = ReadFile(f.ca, 1u << 20);
  if (!ca) return Usage(ca.error().ToString());
  std::string ca_pem(ca->begin(), ca->end());
  if (auto anchor = LoadAnchor(ca_pem, {}, std::nullopt); !anchor) {
    return Usage("--ca " + f.ca + ": " + anchor.error().message());
  }
  std::optional<Policy> policy;
  if (!f.policy.empty()) {
    auto bytes = ReadFile(f.policy, kMaxPolicyBytes);
    if (!bytes) return Usage(bytes.error().ToString());
    auto parsed = ParsePolicy(*bytes);
    if (!parsed) return Usage("--policy " + f.policy + ": " + parsed.error().message());
    policy = std::move(*parsed);
  }
  std::string key_pem;
  if (!f.sign_key.empty()) {
    auto key = ReadFile(f.sign_key, 1u << 16);
    if (!key) return Usage(key.error().ToString());
    key_pem.assign(key->begin(), key->end());
  }
  auto evidence = ReadFile(f.evidence, kMaxEvidenceBytes);
  if (!evidence) return Usage(evidence.error().ToString());

  VerifyOptions options{ca_pem, *nonce, policy ? &*policy : nullptr,
                        f.at ? std::optional<time_t>(static_cast<time_t>(*f.at)) : std::nullopt};
  VerifyResult result = VerifyBundle(*evidence, options);
  std::string out;
  if (f.format == "json") {
    out = EarToJson(result, *nonce, time(nullptr));
  } else if (f.format == "jwt") {
    auto jwt = EarToJwt(result, *nonce, time(nullptr), key_pem);
    if (!jwt) return Usage("--sign-key " + f.sign_key + ": " + jwt.error().message());
    out = *jwt + "\n";
  } else {
    out = ResultToText(result);
  }
  if (auto w = WriteText(f.out, out); !w) return Usage(w.error().ToString());
  if (!f.out.empty() && f.out != "-") {
    std::fprintf(stderr, "vmm-verify: %s\n", std::string(EarStatusName(result.status)).c_str());
  }
  return result.status == EarStatus::kAffirming ? kExitAffirming : kExitNotAffirming;
}

int RunUnpack(const std::string& evidence_path, const std::string& dir) {
  auto bytes = ReadFile(evidence_path, kMaxEvidenceBytes);
  if (!bytes) return Usage(bytes.error().ToString());
  auto evidence = ParseEvidence(*bytes);
  if (!evidence) {
    std::fprintf(stderr, "vmm-verify: %s\n", evidence.error().message().c_str());
    return kExitNotAffirming;
  }
  auto files = UnpackEvidence(*evidence);
  if (!files) {
    std::fprintf(stderr, "vmm-verify: %s\n", files.error().message().c_str());
    return kExitNotAffirming;
  }
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Usage(ErrnoError("cannot create " + dir).ToString());
  }
  for (const auto& [name, data] : *files) {
    if (auto w = WriteFile(dir + "/" + name, data); !w) return Usage(w.error().ToString());
  }
  return 0;
}

int RunPack(const std::string& dir, const std::string& out, const std::string& source) {
  FileSet files;
  auto load = [&](const char* name, bool required) -> Result<void> {
    std::string path = dir + "/" + name;
    if (!required && access(path.c_str(), F_OK) != 0) return Ok();
    ASSIGN_OR_RETURN(files[name], ReadFile(path, kMaxEvidenceBytes));
    return Ok();
  };
  for (const char* name : kPackRequired) {
    if (auto r = load(name, true); !r) return Usage(r.error().ToString());
  }
  for (const char* name : kPackOptional) {
    if (auto r = load(name, false); !r) return Usage(r.error().ToString());
  }
  auto evidence =
      PackEvidence(files, source == "guest" ? EvidenceSource::kGuest : EvidenceSource::kManager);
  if (!evidence) {
    std::fprintf(stderr, "vmm-verify: %s\n", evidence.error().message().c_str());
    return kExitNotAffirming;
  }
  if (auto w = WriteText(out, SerializeEvidence(*evidence)); !w) {
    return Usage(w.error().ToString());
  }
  return 0;
}

struct FromGuestFlags {
  std::string serial, event_log, nonce, out, ca_chain;
};

int RunFromGuest(const FromGuestFlags& f) {
  auto nonce = ParseHex(f.nonce);
  if (!nonce) return Usage(nonce.error().message());
  if (nonce->empty()) return Usage("--nonce: the guest quotes 1 to 32 bytes");
  auto serial = ReadFile(f.serial, kMaxGuestSerialBytes);
  if (!serial) return Usage(serial.error().ToString());
  auto log = ReadFile(f.event_log, kMaxEventLogBytes);
  if (!log) return Usage(log.error().ToString());
  if (log->size() > kMaxEventLogBytes) return Usage("--event-log " + f.event_log + ": too large");
  GuestBundleInputs inputs{*log, *nonce, {}};
  if (!f.ca_chain.empty()) {
    auto pem = ReadFile(f.ca_chain, 1u << 20);
    if (!pem) return Usage(pem.error().ToString());
    auto certs =
        CertsFromPem(std::string_view(reinterpret_cast<const char*>(pem->data()), pem->size()),
                     "--ca-chain " + f.ca_chain);
    if (!certs) return Usage(certs.error().message());
    for (const X509Ptr& cert : *certs) {
      auto text = CertToPem(cert.get());
      if (!text) return Usage(text.error().message());
      inputs.ca_chain_pem.push_back(std::move(*text));
    }
  }
  auto evidence = EvidenceFromGuest(*serial, inputs);
  if (!evidence) {
    std::fprintf(stderr, "vmm-verify: --serial %s: %s\n", f.serial.c_str(),
                 evidence.error().message().c_str());
    return kExitNotAffirming;
  }
  if (auto w = WriteText(f.out, SerializeEvidence(*evidence)); !w) {
    return Usage(w.error().ToString());
  }
  return 0;
}

struct ServeFlags {
  std::string listen, policy, ca, log;
  std::vector<std::string> secrets;
  uint32_t nonce_lifetime = 60;
  size_t max_outstanding = 1024;
  uint32_t connection_timeout = 10;
};

std::atomic<bool> g_stop{false};

// vmm-verify serve: the key broker (README "Key broker").
int RunServe(const ServeFlags& f) {
  auto address = ParseBrokerAddress(f.listen);
  if (!address) return Usage("--listen: " + address.error().message());
  BrokerConfig config;
  config.nonce_lifetime = std::chrono::seconds(f.nonce_lifetime);
  config.max_outstanding = f.max_outstanding;
  for (const std::string& spec : f.secrets) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos) return Usage("--secret " + spec + ": give NAME=FILE");
    const std::string name = spec.substr(0, eq), path = spec.substr(eq + 1);
    if (auto ok = CheckSecretName(name); !ok)
      return Usage("--secret " + spec + ": " + ok.error().message());
    if (config.secrets.contains(name)) return Usage("--secret " + name + " given twice");
    auto bytes = ReadFile(path, kMaxSecretBytes);
    if (!bytes) return Usage(bytes.error().ToString());
    if (bytes->size() > kMaxSecretBytes) {
      return Usage("--secret " + spec + ": larger than " + std::to_string(kMaxSecretBytes) +
                   " bytes");
    }
    config.secrets[name] = std::move(*bytes);
  }
  auto ca = ReadFile(f.ca, 1u << 20);
  if (!ca) return Usage(ca.error().ToString());
  config.ca_pem.assign(ca->begin(), ca->end());
  if (auto anchor = LoadAnchor(config.ca_pem, {}, std::nullopt); !anchor) {
    return Usage("--ca " + f.ca + ": " + anchor.error().message());
  }
  auto policy_bytes = ReadFile(f.policy, kMaxPolicyBytes);
  if (!policy_bytes) return Usage(policy_bytes.error().ToString());
  auto policy = ParsePolicy(*policy_bytes);
  if (!policy) return Usage("--policy " + f.policy + ": " + policy.error().message());
  config.policy = std::move(*policy);
  int log_fd = -1;
  if (!f.log.empty()) {
    log_fd = open(f.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (log_fd < 0) return Usage(ErrnoError("cannot open --log " + f.log).ToString());
  }
  auto listener = ListenBroker(*address);
  if (!listener) return Usage("--listen " + f.listen + ": " + listener.error().ToString());
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop.store(true); };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::fprintf(stderr, "vmm-verify: serving %zu secret(s) on %s\n", config.secrets.size(),
               address->ToString().c_str());
  KeyBroker broker(std::move(config));
  ServeLimits limits;
  limits.connection_timeout = std::chrono::seconds(f.connection_timeout);
  auto served = ServeBroker(listener->get(), broker, log_fd, g_stop, limits);
  if (address->kind == BrokerAddress::Kind::kUnix) unlink(address->path.c_str());
  if (log_fd >= 0) close(log_fd);
  if (!served) {
    std::fprintf(stderr, "vmm-verify: %s\n", served.error().ToString().c_str());
    return kExitNotAffirming;
  }
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "vmm-verify: check a vmm-evidence/1 bundle (a vTPM quote, its event log and certificates) "
      "against the CA you trust, the nonce you chose and your reference-value policy"};
  app.set_version_flag("--version", std::string("vmm-verify ") + VMM_VERSION);
  app.require_subcommand(0, 1);
  app.footer(
      "Exit status: 0 the verdict is affirming; 1 it is not (warning, contraindicated, or a "
      "bundle that does not parse); 2 usage error (bad flags, unreadable files, a CA, policy or "
      "key that does not parse).");
  VerifyFlags f;
  app.add_option("--evidence", f.evidence, "The evidence bundle (vmm attest --out)")
      ->type_name("FILE");
  app.add_option("--ca", f.ca, "The vTPM CA certificate you trust (PEM): the only trust anchor")
      ->type_name("CERT");
  app.add_option("--policy", f.policy,
                 "Reference-value policy (vmm-policy/1, e.g. from vmm measure --policy-out); "
                 "without it nothing is appraised and the verdict is at best warning")
      ->type_name("FILE");
  app.add_option("--nonce", f.nonce, "The nonce you gave vmm attest, in hex")->type_name("HEX");
  app.add_option("--sign-key", f.sign_key, "P-256 private key (PEM) to sign the result as a JWT")
      ->type_name("PEM");
  app.add_option("--out", f.out, "Write the result to FILE instead of stdout")->type_name("FILE");
  app.add_option("--format", f.format,
                 "text: one line per check and the verdict (default); json: the EAR claims; "
                 "jwt: the EAR signed ES256 with --sign-key")
      ->check(CLI::IsMember({"text", "json", "jwt"}));
  app.add_option("--at", f.at, "Check certificate validity at this time instead of now")
      ->type_name("UNIX_TIME");

  std::string unpack_evidence, unpack_dir;
  CLI::App* unpack = app.add_subcommand(
      "unpack",
      "Write a bundle as tpm2-tools' files into DIR: quote.msg, quote.sig, quote.pcrs "
      "(tpm2_checkquote -m -s -f), ak.pub, ak.pub.pem, ak.crt.pem, ek.crt.pem, ca-chain.pem, "
      "eventlog.bin");
  AddRequiredOption(unpack, "--evidence", unpack_evidence, "The bundle", "FILE");
  AddRequiredOption(unpack, "--dir", unpack_dir, "Directory to write (created if missing)", "DIR");
  unpack->footer("Exit status: 0 written; 1 the bundle is not valid; 2 usage or I/O error.");

  std::string pack_dir, pack_out, pack_source = "manager";
  CLI::App* pack = app.add_subcommand(
      "pack",
      "Build a bundle from tpm2-tools' files in DIR (as unpack writes them; quote.msg, quote.sig, "
      "quote.pcrs from tpm2_quote -m -s -o, ak.pub from tpm2_createak -u, eventlog.bin "
      "required; the certificates optional)");
  AddRequiredOption(pack, "--dir", pack_dir, "Directory to read", "DIR");
  AddRequiredOption(pack, "--out", pack_out, "The bundle to write (- for stdout)", "FILE");
  pack->add_option("--source", pack_source, "Who quoted: manager (default) or guest")
      ->check(CLI::IsMember({"manager", "guest"}));
  pack->footer("Exit status: 0 written; 1 the files are not valid evidence; 2 usage or I/O error.");

  FromGuestFlags guest;
  CLI::App* from_guest = app.add_subcommand(
      "from-guest",
      "Build a bundle (\"source\": \"guest\") from a guest's console output: the `attest:` "
      "lines the test guest prints when it quotes its own vTPM (attest_nonce=HEX), with the "
      "host's copy of the event log (vmm run --event-log-out)");
  AddRequiredOption(from_guest, "--serial", guest.serial,
                    "The guest's console output (vmm run's stdout)", "FILE");
  AddRequiredOption(from_guest, "--event-log", guest.event_log, "The boot's event log", "FILE");
  AddRequiredOption(from_guest, "--nonce", guest.nonce, "The nonce the guest was given, in hex",
                    "HEX");
  AddRequiredOption(from_guest, "--out", guest.out, "The bundle to write (- for stdout)", "FILE");
  AddTypedOption(from_guest, "--ca-chain", guest.ca_chain,
                 "CA certificates (PEM) for the bundle's ca_chain, issuer first", "PEM");
  from_guest->footer(
      "Exit status: 0 written; 1 the output holds no valid guest evidence for this nonce; 2 "
      "usage or I/O error.");

  ServeFlags serve_flags;
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Run the key broker: release each --secret only to a client whose evidence, bound to the "
      "broker's fresh nonce and the client's key, verifies affirming against --ca and --policy "
      "(protocol vmm-broker/1, README \"Key broker\")");
  AddRequiredOption(serve, "--listen", serve_flags.listen, "unix:PATH or tcp:A.B.C.D:PORT", "ADDR");
  AddRequiredOption(serve, "--policy", serve_flags.policy, "Reference-value policy (vmm-policy/1)",
                    "FILE");
  AddRequiredOption(serve, "--ca", serve_flags.ca, "The vTPM CA certificate you trust (PEM)",
                    "CERT");
  AddRequiredOption(serve, "--secret", serve_flags.secrets,
                    "A secret to release: its name and file", "NAME=FILE");
  AddTypedOption(serve, "--log", serve_flags.log, "Append one JSON line per decision to FILE",
                 "FILE");
  serve->add_option("--nonce-lifetime", serve_flags.nonce_lifetime, "Seconds a challenge lives")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  serve
      ->add_option("--max-outstanding", serve_flags.max_outstanding,
                   "Challenges that may be outstanding at once")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  serve
      ->add_option("--connection-timeout", serve_flags.connection_timeout,
                   "Seconds one connection may take")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  serve->footer("Exit status: 0 stopped by SIGTERM or SIGINT; 1 serving failed; 2 usage error.");

  if (std::optional<int> done = ParseCommandLine(app, argc, argv, "vmm-verify")) return *done;
  if (serve->parsed()) return RunServe(serve_flags);
  if (unpack->parsed()) return RunUnpack(unpack_evidence, unpack_dir);
  if (pack->parsed()) return RunPack(pack_dir, pack_out, pack_source);
  if (from_guest->parsed()) return RunFromGuest(guest);
  for (auto [flag, value] : {std::pair{"--evidence", &f.evidence}, std::pair{"--ca", &f.ca},
                             std::pair{"--nonce", &f.nonce}}) {
    if (value->empty()) return Usage(std::string(flag) + " is required (see --help)");
  }
  return RunVerify(f);
}

}  // namespace
}  // namespace vmm::attestation

int main(int argc, char** argv) { return vmm::attestation::Main(argc, argv); }
