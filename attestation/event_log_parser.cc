// ParseEventLog and ReplayEventLog: pure functions over the log's bytes.
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include "attestation/event_log.h"
#include "attestation/internal.h"
#include "base/bytes.h"
#include "base/openssl_ptr.h"

namespace vmm::attestation {

namespace {

constexpr size_t kSha1EventHeader = 32;    // pcr, type, sha1[20], size
constexpr size_t kEvent2FixedHeader = 12;  // pcr, type, count
constexpr uint32_t kMaxAlgorithms = 16;
constexpr size_t kMaxUnknownDigestSize = 64;
constexpr std::string_view kSpecIdPrefix{"Spec ID Event", 13};

std::string Num(uint64_t v) { return std::to_string(v); }

Error Malformed(uint64_t offset, const std::string& what) {
  return Error(ErrorKind::kProtocol, "event log: at offset " + Num(offset) + ": " + what);
}

// Whether everything from a record boundary on is free space (all 0x00 or all 0xFF). Offsets
// only grow, so the first byte that is not `fill` is remembered and scanned for once.
class FreeSpace {
 public:
  explicit FreeSpace(std::span<const uint8_t> b) : b_(b) {}
  bool From(size_t off) {
    if (off >= b_.size()) return true;
    uint8_t first = b_[off];
    if (first != 0x00 && first != 0xFF) return false;
    Scan& s = first == 0x00 ? zero_ : ones_;
    if (!(off >= s.start && off <= s.stop)) {
      s.start = off;
      s.stop = static_cast<size_t>(
          std::find_if(b_.begin() + off, b_.end(), [first](uint8_t v) { return v != first; }) -
          b_.begin());
    }
    return s.stop == b_.size();
  }

 private:
  struct Scan {
    size_t start = 1;  // [start, stop) holds only the fill byte; empty until the first scan
    size_t stop = 0;
  };
  std::span<const uint8_t> b_;
  Scan zero_, ones_;
};

bool IsStartupLocality(const Event& e) {
  return e.type == kEvNoAction && e.pcr == 0 &&
         e.data.size() == kStartupLocalitySignature.size() + 1 &&
         std::memcmp(e.data.data(), kStartupLocalitySignature.data(),
                     kStartupLocalitySignature.size()) == 0;
}

// Reads the data size at `off` and the data after it into `e`; returns the offset past it.
Result<size_t> ReadEventData(std::span<const uint8_t> b, size_t off, const ParseLimits& limits,
                             Event& e) {
  auto size = LoadLe<uint32_t>(b, off);
  if (!size) {
    return Malformed(off, "record truncated: no room for its event size (" +
                              Num(b.size() - std::min(off, b.size())) + " bytes left)");
  }
  if (*size > limits.max_event_data) {
    return Malformed(off, "event size " + Num(*size) + " exceeds the limit of " +
                              Num(limits.max_event_data) + " bytes");
  }
  off += 4;
  if (!InBounds(b.size(), off, *size)) {
    return Malformed(off, "event data of " + Num(*size) + " bytes runs past the end of the " +
                              Num(b.size()) + "-byte log");
  }
  e.data.assign(b.begin() + off, b.begin() + off + *size);
  return off + *size;
}

Result<SpecIdEvent> ParseSpecId(std::span<const uint8_t> d, uint64_t base) {
  // d begins with the 16-byte signature, already checked.
  SpecIdEvent s;
  constexpr size_t kFixed = 16 + 4 + 4 + 4;  // signature, class, versions+uintn, count
  if (d.size() < kFixed + 1) {
    return Malformed(base + d.size(), "Spec ID event truncated: " + Num(d.size()) +
                                          " bytes, at least " + Num(kFixed + 1) + " needed");
  }
  s.platform_class = *LoadLe<uint32_t>(d, 16);
  s.spec_version_minor = d[20];
  s.spec_version_major = d[21];
  s.spec_errata = d[22];
  s.uintn_size = d[23];
  uint32_t n = *LoadLe<uint32_t>(d, 24);
  if (n == 0 || n > kMaxAlgorithms) {
    return Malformed(base + 24, "Spec ID event lists " + Num(n) + " algorithms (1 to " +
                                    Num(kMaxAlgorithms) + " allowed)");
  }
  size_t off = 28;
  for (uint32_t i = 0; i < n; ++i) {
    if (!InBounds(d.size(), off, 4)) {
      return Malformed(base + off, "Spec ID event truncated in its algorithm list (" + Num(i) +
                                       " of " + Num(n) + " read)");
    }
    AlgorithmSize a{*LoadLe<uint16_t>(d, off), *LoadLe<uint16_t>(d, off + 2)};
    auto known = DigestSizeOf(a.alg);
    if (known && *known != a.digest_size) {
      return Malformed(base + off + 2, "Spec ID event gives " + AlgName(a.alg) +
                                           " a digest size of " + Num(a.digest_size) + ", not " +
                                           Num(*known));
    }
    if (!known && (a.digest_size == 0 || a.digest_size > kMaxUnknownDigestSize)) {
      return Malformed(base + off + 2, "Spec ID event gives unknown algorithm " + AlgName(a.alg) +
                                           " an implausible digest size of " + Num(a.digest_size));
    }
    for (const AlgorithmSize& prev : s.algorithms) {
      if (prev.alg == a.alg) {
        return Malformed(base + off, "Spec ID event lists " + AlgName(a.alg) + " twice");
      }
    }
    s.algorithms.push_back(a);
    off += 4;
  }
  if (off >= d.size()) {
    return Malformed(base + off, "Spec ID event truncated: no vendorInfoSize");
  }
  uint8_t vendor = d[off++];
  if (d.size() - off != vendor) {
    return Malformed(base + off - 1, "Spec ID event's vendorInfoSize " + Num(vendor) +
                                         " does not match the " + Num(d.size() - off) +
                                         " bytes left in the event");
  }
  s.vendor_info.assign(d.begin() + off, d.end());
  return s;
}

}  // namespace

Result<EventLog> ParseEventLog(std::span<const uint8_t> b, const ParseLimits& limits) {
  if (b.empty()) return Malformed(0, "empty event log (0 bytes)");
  if (b.size() > limits.max_log_size) {
    return Malformed(0, "log of " + Num(b.size()) + " bytes exceeds the limit of " +
                            Num(limits.max_log_size) + " bytes");
  }
  EventLog log;
  FreeSpace free_space(b);

  // The first record is always a TCG_PCR_EVENT.
  auto read_sha1_event = [&](size_t off) -> Result<size_t> {
    if (!InBounds(b.size(), off, kSha1EventHeader)) {
      return Malformed(off, std::string(off == 0 ? "truncated header" : "record truncated") + ": " +
                                Num(b.size() - off) +
                                " bytes left, a TCG_PCR_EVENT "
                                "needs " +
                                Num(kSha1EventHeader));
    }
    Event e;
    e.index = static_cast<uint32_t>(log.events.size());
    e.offset = off;
    e.pcr = *LoadLe<uint32_t>(b, off);
    e.type = *LoadLe<uint32_t>(b, off + 4);
    e.digests.push_back(
        {kAlgSha1, std::vector<uint8_t>(b.begin() + off + 8, b.begin() + off + 28)});
    ASSIGN_OR_RETURN(size_t next, ReadEventData(b, off + 28, limits, e));
    log.events.push_back(std::move(e));
    return next;
  };

  ASSIGN_OR_RETURN(size_t off, read_sha1_event(0));
  const Event& first = log.events[0];
  bool spec_prefix =
      first.data.size() >= kSpecIdPrefix.size() &&
      std::memcmp(first.data.data(), kSpecIdPrefix.data(), kSpecIdPrefix.size()) == 0;
  if (first.pcr == 0 && first.type == kEvNoAction && spec_prefix) {
    std::string_view sig(reinterpret_cast<const char*>(first.data.data()),
                         std::min<size_t>(first.data.size(), 16));
    if (sig == kSpecIdSignature03) {
      log.format = LogFormat::kCryptoAgile;
    } else if (sig == std::string_view("Spec ID Event00\0", 16) ||
               sig == std::string_view("Spec ID Event02\0", 16)) {
      log.format = LogFormat::kSha1;  // the TPM 1.2 headers: a SHA-1 log follows
    } else {
      return Malformed(kSha1EventHeader, "bad Spec ID signature \"" +
                                             DescribeEventData(kEvAction, first.data) +
                                             "\" (expected \"Spec ID Event03\")");
    }
  } else {
    log.format = LogFormat::kSha1;
  }
  if (log.format == LogFormat::kCryptoAgile) {
    if (std::any_of(first.digests[0].bytes.begin(), first.digests[0].bytes.end(),
                    [](uint8_t v) { return v != 0; })) {
      return Malformed(8, "the Spec ID header's digest is not zero");
    }
    ASSIGN_OR_RETURN(log.spec_id, ParseSpecId(first.data, kSha1EventHeader));
  }

  // Checks of every record once read (in a SHA-1 log the first one is an ordinary event).
  auto check_event = [&log](const Event& e) -> Result<void> {
    if (e.type != kEvNoAction && e.pcr >= kNumPcrs) {
      return Malformed(e.offset, "PCR index " + Num(e.pcr) + " out of range (0-23)");
    }
    if (IsStartupLocality(e) && !log.startup_locality) log.startup_locality = e.data.back();
    return Ok();
  };
  if (log.format == LogFormat::kSha1) RETURN_IF_ERROR(check_event(log.events[0]));

  const size_t max_events = limits.max_events;
  while (!free_space.From(off)) {
    if (log.events.size() >= max_events) {
      return Malformed(off, "more than " + Num(max_events) + " events");
    }
    if (log.format == LogFormat::kSha1) {
      ASSIGN_OR_RETURN(off, read_sha1_event(off));
    } else {
      const auto& algs = log.spec_id->algorithms;
      if (!InBounds(b.size(), off, kEvent2FixedHeader)) {
        return Malformed(off, "record truncated: " + Num(b.size() - off) +
                                  " bytes left, a TCG_PCR_EVENT2 header needs " +
                                  Num(kEvent2FixedHeader + 4));
      }
      Event e;
      e.index = static_cast<uint32_t>(log.events.size());
      e.offset = off;
      e.pcr = *LoadLe<uint32_t>(b, off);
      e.type = *LoadLe<uint32_t>(b, off + 4);
      uint32_t count = *LoadLe<uint32_t>(b, off + 8);
      if (count != algs.size()) {
        return Malformed(off + 8, "digest count " + Num(count) + " does not match the " +
                                      Num(algs.size()) + " algorithms of the Spec ID event");
      }
      off += kEvent2FixedHeader;
      e.digests.reserve(count);
      for (uint32_t i = 0; i < count; ++i) {
        auto alg = LoadLe<uint16_t>(b, off);
        if (!alg) return Malformed(off, "record truncated in its digest list");
        auto it = std::find_if(algs.begin(), algs.end(),
                               [&](const AlgorithmSize& a) { return a.alg == *alg; });
        if (it == algs.end()) {
          return Malformed(
              off, "digest algorithm " + AlgName(*alg) + " is not listed in the Spec ID event");
        }
        for (const Digest& d : e.digests) {
          if (d.alg == *alg) return Malformed(off, "second " + AlgName(*alg) + " digest");
        }
        off += 2;
        if (!InBounds(b.size(), off, it->digest_size)) {
          return Malformed(off, AlgName(*alg) + " digest of " + Num(it->digest_size) +
                                    " bytes runs past the end of the " + Num(b.size()) +
                                    "-byte log");
        }
        e.digests.push_back(
            {*alg, std::vector<uint8_t>(b.begin() + off, b.begin() + off + it->digest_size)});
        off += it->digest_size;
      }
      ASSIGN_OR_RETURN(off, ReadEventData(b, off, limits, e));
      log.events.push_back(std::move(e));
    }
    RETURN_IF_ERROR(check_event(log.events.back()));
  }
  log.used_bytes = off;
  log.free_bytes = b.size() - off;
  return log;
}

Result<std::vector<PcrBank>> ReplayEventLog(const EventLog& log) {
  std::vector<uint16_t> algs;
  if (log.format == LogFormat::kSha1 || !log.spec_id) {
    algs.push_back(kAlgSha1);
  } else {
    for (const AlgorithmSize& a : log.spec_id->algorithms) {
      if (DigestSizeOf(a.alg) && AlgSupported(a.alg)) algs.push_back(a.alg);
    }
  }
  if (algs.empty()) {
    return Error(ErrorKind::kUnsupported, "event log replay: no bank of the log can be computed");
  }
  std::vector<PcrBank> banks;
  // A context per bank, kept across its extends: OpenSSL 3 re-initialises a context for the
  // digest it already holds without fetching the implementation again.
  std::vector<EvpMdCtxPtr> ctxs;
  for (uint16_t alg : algs) {
    PcrBank bank;
    bank.alg = alg;
    size_t n = *DigestSizeOf(alg);
    for (uint32_t i = 0; i < kNumPcrs; ++i) {
      bank.pcrs[i].assign(n, (i >= 17 && i <= 22) ? 0xFF : 0x00);
    }
    if (log.startup_locality) bank.pcrs[0].back() = *log.startup_locality;
    banks.push_back(std::move(bank));
    ctxs.emplace_back(EVP_MD_CTX_new());
    if (!ctxs.back()) return Error(ErrorKind::kInternal, "EVP_MD_CTX_new failed");
  }
  for (const Event& e : log.events) {
    if (e.type == kEvNoAction) continue;
    if (e.pcr >= kNumPcrs) {  // the parser refuses these; an EventLog made by hand may not
      return Error(ErrorKind::kInvalidArgument,
                   "event log replay: event " + Num(e.index) + " extends PCR " + Num(e.pcr));
    }
    for (size_t b = 0; b < banks.size(); ++b) {
      PcrBank& bank = banks[b];
      EVP_MD_CTX* ctx = ctxs[b].get();
      auto d = std::find_if(e.digests.begin(), e.digests.end(),
                            [&](const Digest& x) { return x.alg == bank.alg; });
      if (d == e.digests.end()) continue;  // the parser makes every record carry every bank
      std::vector<uint8_t>& pcr = bank.pcrs[e.pcr];
      unsigned int len = 0;
      uint8_t out[EVP_MAX_MD_SIZE];
      if (EVP_DigestInit_ex(ctx, internal::EvpFor(bank.alg), nullptr) != 1 ||
          EVP_DigestUpdate(ctx, pcr.data(), pcr.size()) != 1 ||
          EVP_DigestUpdate(ctx, d->bytes.data(), d->bytes.size()) != 1 ||
          EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != pcr.size()) {
        return Error(ErrorKind::kInternal,
                     "event log replay: hashing failed for " + AlgName(bank.alg));
      }
      std::copy(out, out + len, pcr.begin());
    }
  }
  return banks;
}

}  // namespace vmm::attestation
