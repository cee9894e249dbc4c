#include "attestation/verify.h"

#include <functional>
#include <limits>
#include <memory>
#include <set>

#include "attestation/cert_checks.h"
#include "attestation/chain_cache.h"
#include "attestation/event_log.h"
#include "attestation/quote.h"
#include "base/hex.h"

namespace vmm::attestation {
namespace {

// AR4SI values (draft-ietf-rats-ar4si §2.3.4): 2 affirming, 3 "approved boot-time" executables
// (we attest the boot, not the runtime), 96 contraindicated, 97 not recognized, 99
// cryptographic validation of the evidence failed, 1 unexpected evidence.
enum Ar4siValue : int {
  kUnexpectedEvidence = 1,
  kAffirming = 2,
  kApprovedBoot = 3,
  kContraindicated = 96,
  kUnrecognized = 97,
  kCryptoFailed = 99,
};

// Checks of the evidence's integrity and freshness: if one fails, nothing the evidence says can
// be trusted, so every appraised claim reports the failed validation.
const std::set<std::string, std::less<>> kIntegrityChecks = {
    "quote-magic", "quote-type",      "quote-signature", "nonce",
    "pcr-digest",  "event-log-parse", "event-log-replay"};

class Runner {
 public:
  explicit Runner(std::vector<Check>& checks) : checks_(checks) { checks_.reserve(24); }

  // Runs `fn` unless a dependency did not pass; `fn` fills reason and may set fail.
  template <typename Fn>
  void Run(const std::string& name, Claim claim, std::initializer_list<std::string_view> deps,
           Fn&& fn) {
    Check c;
    c.name = name;
    c.claim = claim;
    for (std::string_view dep : deps) {
      CheckStatus s = StatusOf(dep);
      if (s != CheckStatus::kPass) {
        c.status = CheckStatus::kSkip;
        c.reason =
            "not run: " + std::string(dep) + (s == CheckStatus::kFail ? " failed" : " was skipped");
        Add(std::move(c));
        return;
      }
    }
    Result<std::string> r = fn(c);
    if (r) {
      if (c.status != CheckStatus::kSkip || c.reason.empty()) c.status = CheckStatus::kPass;
      if (c.status == CheckStatus::kPass) c.reason = std::move(*r);
    } else {
      c.status = CheckStatus::kFail;
      c.reason = r.error().message();
    }
    Add(std::move(c));
  }

  void Add(Check c) { checks_.push_back(std::move(c)); }

  bool Passed(std::string_view name) const { return StatusOf(name) == CheckStatus::kPass; }

 private:
  // The last check of that name (a name runs once); a check not run counts as skipped.
  CheckStatus StatusOf(std::string_view name) const {
    for (auto it = checks_.rbegin(); it != checks_.rend(); ++it) {
      if (it->name == name) return it->status;
    }
    return CheckStatus::kSkip;
  }

  std::vector<Check>& checks_;
};

// Skipping from inside a check: the reason is kept and the status stays kSkip.
Result<std::string> Skip(Check& c, std::string reason) {
  c.status = CheckStatus::kSkip;
  c.reason = std::move(reason);
  return std::string();
}

Error Fail(std::string reason) { return Error(ErrorKind::kProtocol, std::move(reason)); }

std::string Short(std::span<const uint8_t> bytes) {
  std::string hex = HexBytes(bytes);
  return hex.size() > 16 ? hex.substr(0, 16) + "..." : hex;
}

// Every PCR an event of the log extends (EV_NO_ACTION never extends), one bit a PCR.
uint32_t TouchedPcrs(const EventLog& log) {
  uint32_t touched = 0;
  for (const Event& e : log.events) {
    if (e.type != kEvNoAction && e.pcr < kNumPcrs) touched |= 1u << e.pcr;
  }
  return touched;
}

Result<std::string> CheckReplay(const Evidence& evidence, const QuoteInfo& quote,
                                const EventLog& log, std::span<const PcrBank> replay, Check& c) {
  static_assert(kNumPcrs <= 32);
  const uint32_t touched = TouchedPcrs(log);
  size_t compared = 0;
  for (const PcrBank& bank : replay) {
    uint32_t quoted = 0;
    for (const PcrSelection& s : quote.selection) {
      if (s.alg != bank.alg) continue;
      quoted = 0;  // the last selection of the bank counts
      for (uint32_t pcr : s.pcrs) quoted |= pcr < kNumPcrs ? 1u << pcr : 0;
    }
    for (uint32_t pcr = 0; pcr < kNumPcrs; ++pcr) {
      if ((touched >> pcr & 1) && !(quoted >> pcr & 1)) {
        c.pcr = pcr;
        return Fail("the log extends " + AlgName(bank.alg) + " PCR " + std::to_string(pcr) +
                    ", which the quote does not cover");
      }
    }
    for (uint32_t pcr = 0; pcr < kNumPcrs; ++pcr) {
      if (!(quoted >> pcr & 1)) continue;  // (pcr-digest already required every quoted value)
      const std::vector<uint8_t>& value = evidence.pcrs.at(bank.alg).at(pcr);
      if (value != bank.pcrs[pcr]) {
        c.pcr = pcr;
        std::string why = (touched >> pcr & 1) ? ""
                                               : " (the log has no event for it, so it should "
                                                 "hold its reset value)";
        return Fail(AlgName(bank.alg) + " PCR " + std::to_string(pcr) + " is " + Short(value) +
                    " in the quote, the log replays to " + Short(bank.pcrs[pcr]) + why);
      }
      ++compared;
    }
  }
  if (compared == 0) return Fail("no quoted PCR bank is a bank of the event log");
  return std::to_string(compared) + " quoted PCR values equal the replay of " +
         std::to_string(log.events.size()) + " log records";
}

void Finish(VerifyResult& r) {
  bool fail = false, skip = false, integrity_failed = false;
  std::array<bool, 9> has_fail{}, has_pass{};
  TrustVector failure{};
  for (const Check& c : r.checks) {
    size_t k = static_cast<size_t>(c.claim);
    if (c.status == CheckStatus::kFail) {
      fail = true;
      has_fail[k] = true;
      int v = kIntegrityChecks.count(c.name) ? kCryptoFailed
              : (c.claim == Claim::kInstanceIdentity || c.claim == Claim::kHardware)
                  ? kUnrecognized
                  : kContraindicated;
      if (c.name == "evidence-format") v = kUnexpectedEvidence;
      failure[k] = std::max(failure[k], v);
      if (kIntegrityChecks.count(c.name)) integrity_failed = true;
    } else if (c.status == CheckStatus::kSkip) {
      // A component the tenant's policy leaves out is their choice, not a gap in the evidence.
      if (c.name.rfind("policy-", 0) != 0) skip = true;
    } else {
      has_pass[k] = true;
    }
  }
  r.status = fail   ? EarStatus::kContraindicated
             : skip ? EarStatus::kWarning
                    : EarStatus::kAffirming;
  for (size_t k = 1; k < r.vector.size(); ++k) {
    if (has_fail[k]) {
      r.vector[k] = failure[k];
    } else if (has_pass[k]) {
      r.vector[k] = static_cast<Claim>(k) == Claim::kExecutables ? kApprovedBoot : kAffirming;
    }
  }
  if (integrity_failed) {
    for (Claim claim : {Claim::kInstanceIdentity, Claim::kConfiguration, Claim::kExecutables}) {
      r.vector[static_cast<size_t>(claim)] = kCryptoFailed;
    }
  }
  if (r.checks.front().name == "evidence-format" && r.checks.front().status == CheckStatus::kFail) {
    r.vector[static_cast<size_t>(Claim::kInstanceIdentity)] = kUnexpectedEvidence;
  }
}

// Stores the certificate checks' outcome and the parsed AK when none failed and the AK
// certificate (and the EK certificate, if the bundle has one) passed, valid while every certificate
// read is.
void Remember(ChainCache& cache, const ChainCache::Key& key, const VerifyResult& r,
              const std::optional<CertAnchor>& anchor, std::shared_ptr<const AkPublic> ak,
              X509* ak_cert, X509* ek_cert) {
  ChainCache::Entry entry;
  entry.vm_id = r.vm_id;
  entry.ak = std::move(ak);
  for (const Check& c : r.checks) {
    if (c.name != "ca-chain" && c.name != "ak-public" && c.name != "ak-certificate" &&
        c.name != "ak-binding" && c.name != "ek-certificate") {
      continue;
    }
    if (c.status == CheckStatus::kFail) return;
    entry.checks.push_back(c);
  }
  if (entry.checks.size() != 5 || !anchor || !entry.ak || ak_cert == nullptr) return;
  std::vector<X509*> certs = {anchor->ca.get(), ak_cert};
  if (ek_cert) certs.push_back(ek_cert);
  for (const X509Ptr& c : anchor->intermediates) certs.push_back(c.get());
  entry.not_before = std::numeric_limits<time_t>::min();
  entry.not_after = std::numeric_limits<time_t>::max();
  for (X509* cert : certs) {
    Result<Validity> v = ValidityOf(cert);
    if (!v) return;
    entry.not_before = std::max(entry.not_before, v->not_before);
    entry.not_after = std::min(entry.not_after, v->not_after);
  }
  cache.Store(key, std::move(entry));
}

}  // namespace

namespace {

// Names indexed by an enum's value (verify.h spells them); `other` for a value past the table.
template <typename E, size_t N>
std::string_view NameOf(E value, const std::array<std::string_view, N>& names,
                        std::string_view other) {
  const size_t i = static_cast<size_t>(value);
  return i < N ? names[i] : other;
}

constexpr std::array<std::string_view, 4> kEarStatusNames = {"none", "affirming", "warning",
                                                             "contraindicated"};
constexpr std::array<std::string_view, 3> kCheckStatusNames = {"pass", "fail", "skip"};
constexpr std::array<std::string_view, 9> kClaimNames = {
    "",         "instance-identity", "configuration",  "executables", "file-system",
    "hardware", "runtime-opaque",    "storage-opaque", "sourced-data"};

}  // namespace

std::string_view EarStatusName(EarStatus status) { return NameOf(status, kEarStatusNames, "none"); }

std::string_view CheckStatusName(CheckStatus status) {
  return NameOf(status, kCheckStatusNames, "skip");
}

std::string_view ClaimName(Claim claim) { return NameOf(claim, kClaimNames, ""); }

VerifyResult Verify(const Evidence& e, const VerifyOptions& options) {
  VerifyResult r;
  if (options.policy) r.policy_id = options.policy->id;
  Runner run(r.checks);
  run.Add(Check{"evidence-format", CheckStatus::kPass,
                std::string(kEvidenceFormat) + ", source " +
                    (e.source == EvidenceSource::kGuest ? "guest" : "manager"),
                Claim::kNone, std::nullopt, std::nullopt});
  const Claim id = Claim::kInstanceIdentity;

  // The certificate checks' outcome from the cache when it holds a passed one for these very
  // inputs (chain_cache.h); each check still runs through `run` with its dependencies.
  ChainCache* cache = options.chain_cache;
  ChainCache::Key key{};
  std::shared_ptr<const ChainCache::Entry> hit;
  const time_t at = options.at ? *options.at : time(nullptr);
  if (cache) {
    key = ChainCache::KeyOf(options.ca_pem, e);
    if (key == ChainCache::Key{}) {
      cache = nullptr;
    } else {
      hit = cache->Find(key, at);
    }
  }
  auto cached = [&](Check& c) -> Result<std::string> {
    for (const Check& saved : hit->checks) {
      if (saved.name != c.name) continue;
      if (saved.status == CheckStatus::kSkip) return Skip(c, saved.reason);
      return saved.reason;
    }
    return Error(ErrorKind::kInternal, "the chain cache has no " + c.name + " result");
  };

  std::optional<CertAnchor> anchor;
  run.Run("ca-chain", id, {}, [&](Check& c) -> Result<std::string> {
    if (hit) return cached(c);
    ASSIGN_OR_RETURN(CertAnchor a, LoadAnchor(options.ca_pem, e.ca_chain_pem, options.at));
    RETURN_IF_ERROR(CheckCaChain(a));
    anchor = std::move(a);
    return e.ca_chain_pem.empty()
               ? std::string("no intermediates; the certificates must come from the CA itself")
               : std::to_string(e.ca_chain_pem.size()) + " certificate(s) chain to the CA";
  });

  std::shared_ptr<const AkPublic> ak;
  run.Run("ak-public", id, {}, [&](Check& c) -> Result<std::string> {
    if (hit && hit->ak) {
      ak = hit->ak;
      return cached(c);
    }
    ASSIGN_OR_RETURN(AkPublic a, ParseAkPublic(e.ak_public));
    std::string what = a.type == 0x0023 ? "ECC P-256" : "RSA 2048";
    ak = std::make_shared<const AkPublic>(std::move(a));
    return what + " restricted signing key, name " + Short(ak->name);
  });

  X509Ptr ak_cert;
  run.Run("ak-certificate", id, {"ca-chain", "ak-public"}, [&](Check& c) -> Result<std::string> {
    if (hit) return cached(c);
    ASSIGN_OR_RETURN(ak_cert, CheckAkCertificate(*anchor, e.ak_certificate_pem, ak->key.get()));
    return "issued by the CA to the AK: \"" + CommonName(ak_cert.get()) + "\"";
  });

  run.Run("ak-binding", id, {"ak-certificate"}, [&](Check& c) -> Result<std::string> {
    if (hit) {
      r.vm_id = hit->vm_id;
      return cached(c);
    }
    if (e.ek_certificate_pem.empty()) return Skip(c, "the bundle has no EK certificate");
    ASSIGN_OR_RETURN(X509Ptr ek, CertFromPem(e.ek_certificate_pem, "the EK certificate"));
    ASSIGN_OR_RETURN(r.vm_id, CheckAkBinding(ak_cert.get(), ek.get()));
    return "the AK and EK certificates name vm-id \"" + r.vm_id +
           "\" and the same TPM, from the same CA";
  });

  X509Ptr ek_cert;
  run.Run("ek-certificate", Claim::kHardware, {"ca-chain"}, [&](Check& c) -> Result<std::string> {
    if (hit) return cached(c);
    if (e.ek_certificate_pem.empty()) return Skip(c, "the bundle has no EK certificate");
    ASSIGN_OR_RETURN(ek_cert, CheckEkCertificate(*anchor, e.ek_certificate_pem));
    return "issued by the CA: \"" + CommonName(ek_cert.get()) + "\"";
  });
  if (cache && !hit) Remember(*cache, key, r, anchor, ak, ak_cert.get(), ek_cert.get());

  std::optional<QuoteInfo> quote;
  run.Run("quote-magic", id, {}, [&](Check&) -> Result<std::string> {
    ASSIGN_OR_RETURN(QuoteInfo q, ParseQuote(e.attest));
    quote = std::move(q);
    if (quote->magic != kTpmGeneratedValue) {
      return Fail("magic " + Hex(quote->magic, 8) + " is not TPM_GENERATED_VALUE");
    }
    return std::string("TPM_GENERATED_VALUE");
  });
  run.Run("quote-type", id, {"quote-magic"}, [&](Check&) -> Result<std::string> {
    if (quote->type != kTpmStAttestQuote) {
      return Fail("type " + Hex(quote->type, 4) + " is not TPM_ST_ATTEST_QUOTE");
    }
    return std::string("TPM_ST_ATTEST_QUOTE");
  });

  SignatureInfo sig;
  run.Run("quote-signature", id, {"ak-public", "quote-type"}, [&](Check&) -> Result<std::string> {
    ASSIGN_OR_RETURN(sig, VerifyQuoteSignature(*ak, e.attest, e.signature));
    std::string hierarchy;
    for (auto [handle, what] :
         {std::pair{kTpmRhEndorsement, "endorsement"}, std::pair{kTpmRhOwner, "owner"},
          std::pair{kTpmRhNull, "null"}, std::pair{kTpmRhPlatform, "platform"}}) {
      ASSIGN_OR_RETURN(std::vector<uint8_t> qn, QualifiedNameAsPrimary(*ak, handle));
      if (qn == quote->qualified_signer) {
        hierarchy = what;
        break;
      }
    }
    if (hierarchy.empty()) {
      return Fail("the quote's qualifiedSigner " + Short(quote->qualified_signer) +
                  " is not the AK's qualified name as a primary key (name " + Short(ak->name) +
                  "); an AK under a parent key is not supported");
    }
    r.quote_clock = VerifyResult::Clock{quote->clock, quote->reset_count, quote->restart_count,
                                        quote->safe, quote->firmware_version};
    return (sig.sig_alg == 0x0018 ? std::string("ECDSA") : std::string("RSASSA")) + "-" +
           AlgName(sig.hash_alg) + " by the AK, a primary key of the " + hierarchy + " hierarchy";
  });

  run.Run("nonce", id, {"quote-signature"}, [&](Check&) -> Result<std::string> {
    if (quote->extra_data != options.nonce) {
      return Fail("the quote's extraData " + Short(quote->extra_data) + " is not the nonce " +
                  Short(options.nonce) + " (a stale or replayed quote)");
    }
    return "extraData is the nonce " + Short(options.nonce);
  });

  run.Run("pcr-digest", Claim::kExecutables, {"quote-signature"},
          [&](Check&) -> Result<std::string> {
            ASSIGN_OR_RETURN(std::vector<uint8_t> digest,
                             ComputePcrDigest(sig.hash_alg, quote->selection, e.pcrs));
            if (digest != quote->pcr_digest) {
              return Fail("the bundle's PCR values hash to " + Short(digest) +
                          ", the quote's pcrDigest is " + Short(quote->pcr_digest));
            }
            size_t n = 0;
            std::string banks;
            for (const PcrSelection& s : quote->selection) {
              n += s.pcrs.size();
              banks += (banks.empty() ? "" : ", ") + AlgName(s.alg);
            }
            return std::to_string(n) + " PCR values (" + banks + ") match the quote's digest";
          });

  std::optional<EventLog> log;
  run.Run("event-log-parse", Claim::kExecutables, {}, [&](Check&) -> Result<std::string> {
    ASSIGN_OR_RETURN(EventLog l, ParseEventLog(e.event_log));
    log = std::move(l);
    return std::to_string(log->events.size()) + " records";
  });

  std::vector<PcrBank> replay;
  run.Run("event-log-replay", Claim::kExecutables, {"pcr-digest", "event-log-parse"},
          [&](Check& c) -> Result<std::string> {
            ASSIGN_OR_RETURN(replay, ReplayEventLog(*log));
            return CheckReplay(e, *quote, *log, replay, c);
          });

  if (options.policy == nullptr) {
    run.Add(Check{"policy", CheckStatus::kSkip, "no policy given", Claim::kNone, std::nullopt,
                  std::nullopt});
  } else if (!run.Passed("event-log-replay")) {
    run.Add(Check{"policy", CheckStatus::kSkip, "not run: event-log-replay did not pass",
                  Claim::kExecutables, std::nullopt, std::nullopt});
  } else {
    for (Check& c : AppraiseEventLog(*options.policy, *log, replay)) run.Add(std::move(c));
  }
  Finish(r);
  return r;
}

VerifyResult VerifyBundle(std::span<const uint8_t> json, const VerifyOptions& options) {
  Result<Evidence> e = ParseEvidence(json);
  if (e) return Verify(*e, options);
  VerifyResult r;
  if (options.policy) r.policy_id = options.policy->id;
  r.checks.push_back(Check{"evidence-format", CheckStatus::kFail, e.error().message(), Claim::kNone,
                           std::nullopt, std::nullopt});
  for (const char* name :
       {"ca-chain", "ak-public", "ak-certificate", "ak-binding", "ek-certificate", "quote-magic",
        "quote-type", "quote-signature", "nonce", "pcr-digest", "event-log-parse",
        "event-log-replay", "policy"}) {
    r.checks.push_back(Check{name, CheckStatus::kSkip, "not run: evidence-format failed",
                             Claim::kNone, std::nullopt, std::nullopt});
  }
  Finish(r);
  return r;
}

std::string ResultToText(const VerifyResult& r) {
  std::string out;
  for (const Check& c : r.checks) {
    std::string name = c.name;
    name.resize(std::max<size_t>(name.size(), 18), ' ');
    out += std::string(CheckStatusName(c.status)) + "  " + name + " " + c.reason;
    if (c.status == CheckStatus::kFail && c.pcr) out += " [PCR " + std::to_string(*c.pcr);
    if (c.status == CheckStatus::kFail && c.event_index) {
      out += std::string(c.pcr ? ", " : " [") + "event " + std::to_string(*c.event_index);
    }
    if (c.status == CheckStatus::kFail && (c.pcr || c.event_index)) out += "]";
    out += "\n";
  }
  if (r.quote_clock) {
    out += "quote: clock " + std::to_string(r.quote_clock->clock) + " ms, resetCount " +
           std::to_string(r.quote_clock->reset_count) + ", restartCount " +
           std::to_string(r.quote_clock->restart_count) +
           (r.quote_clock->safe ? ", safe" : ", not safe") + "\n";
  }
  out += "verdict: " + std::string(EarStatusName(r.status)) + "\n";
  return out;
}

}  // namespace vmm::attestation
