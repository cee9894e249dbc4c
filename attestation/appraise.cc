// PolicyFromEventLog and AppraiseEventLog over logs of this VMM's measured-boot scheme
// (ARCHITECTURE.md §6): which event is which is decided by PCR and event type only, never by
// the event data, since a quote covers the digests and not the data. Where the data is what
// was hashed (CRTM version, configuration), the policy's text is hashed and compared with the
// digest instead.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "attestation/appraisal.h"
#include "attestation/internal.h"
#include "base/hex.h"

namespace vmm::attestation {

namespace {

constexpr uint32_t kPcrCrtm = 0, kPcrConfig = 1, kPcrKernel = 4, kPcrCmdline = 8, kPcrInitramfs = 9;
constexpr std::string_view kAcpiPrefix = "ACPI ";

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string Text(std::span<const uint8_t> b) { return {b.begin(), b.end()}; }

bool IsAcpiEvent(const Event& e) {
  return e.type == kEvPlatformConfigFlags && Text(e.data).starts_with(kAcpiPrefix);
}

// The events of one component: PCR and type, and for PCR 1 whether the data names a table.
enum class Component { kCrtm, kConfiguration, kAcpi, kKernel, kCmdline, kInitramfs };

bool Belongs(const Event& e, Component c) {
  switch (c) {
    case Component::kCrtm:
      return e.pcr == kPcrCrtm && e.type == kEvSCrtmVersion;
    case Component::kConfiguration:
      return e.pcr == kPcrConfig && e.type == kEvPlatformConfigFlags && !IsAcpiEvent(e);
    case Component::kAcpi:
      return e.pcr == kPcrConfig && IsAcpiEvent(e);
    case Component::kKernel:
      return e.pcr == kPcrKernel && e.type == kEvIpl;
    case Component::kCmdline:
      return e.pcr == kPcrCmdline && e.type == kEvIpl;
    case Component::kInitramfs:
      return e.pcr == kPcrInitramfs && e.type == kEvIpl;
  }
  return false;
}

std::vector<const Event*> EventsOf(const EventLog& log, Component c) {
  std::vector<const Event*> out;
  for (const Event& e : log.events) {
    if (Belongs(e, c)) out.push_back(&e);
  }
  return out;
}

// "PCR 4 event 5 (EV_IPL kernel)"
std::string Where(const Event& e) {
  return "PCR " + std::to_string(e.pcr) + " event " + std::to_string(e.index) + " (" +
         EventTypeName(e.type) + " " + DescribeEventData(e.type, e.data) + ")";
}

const Digest* DigestIn(const Event& e, uint16_t bank) {
  for (const Digest& d : e.digests) {
    if (d.alg == bank) return &d;
  }
  return nullptr;
}

Check Pass(std::string name, Claim claim, std::string reason) {
  return {std::move(name), CheckStatus::kPass, std::move(reason), claim, {}, {}};
}
Check Skip(std::string name, Claim claim, std::string reason) {
  return {std::move(name), CheckStatus::kSkip, std::move(reason), claim, {}, {}};
}
Check Fail(std::string name, Claim claim, std::string reason, uint32_t pcr,
           std::optional<uint32_t> event = {}) {
  return {std::move(name), CheckStatus::kFail, std::move(reason), claim, pcr, event};
}

// Exactly one event of the component, else a failed check.
std::optional<Check> ExpectOne(const std::vector<const Event*>& events, const std::string& check,
                               Claim claim, uint32_t pcr, const std::string& what) {
  if (events.empty()) {
    return Fail(check, claim, "PCR " + std::to_string(pcr) + ": no " + what + " event in the log",
                pcr);
  }
  if (events.size() > 1) {
    return Fail(check, claim,
                Where(*events[1]) + ": a second " + what + " event (the first is event " +
                    std::to_string(events[0]->index) + ")",
                pcr, events[1]->index);
  }
  return std::nullopt;
}

// The event's digest in every bank both the log and `allowed` have must be one of `allowed`.
Check AppraiseDigest(const Event& e, const DigestSet& allowed, const std::string& check,
                     Claim claim, const std::string& what) {
  std::string matched;
  for (const auto& [bank, list] : allowed) {
    const Digest* d = DigestIn(e, bank);
    if (d == nullptr) continue;
    if (std::find(list.begin(), list.end(), d->bytes) == list.end()) {
      return Fail(
          check, claim,
          Where(e) + ": " + AlgName(bank) + " " + HexBytes(d->bytes) + " is not an allowed " + what,
          e.pcr, e.index);
    }
    matched += (matched.empty() ? "" : ", ") + AlgName(bank) + " " + HexBytes(d->bytes);
  }
  if (matched.empty()) {
    return Fail(check, claim, Where(e) + ": the policy lists no bank the log has", e.pcr, e.index);
  }
  return Pass(check, claim, Where(e) + ": allowed " + what + " (" + matched + ")");
}

// The event's digest must be the hash of one of `texts` in every bank of the event.
Check AppraiseText(const Event& e, const std::vector<std::string>& texts, const std::string& check,
                   Claim claim, const std::string& what) {
  std::vector<uint16_t> banks;
  for (const Digest& d : e.digests) banks.push_back(d.alg);
  for (size_t i = 0; i < texts.size(); ++i) {
    Result<std::vector<Digest>> hashes = HashAll(banks, Bytes(texts[i]));
    if (!hashes) {
      return Fail(check, claim, Where(e) + ": " + hashes.error().message(), e.pcr, e.index);
    }
    if (*hashes == e.digests) {
      return Pass(check, claim,
                  Where(e) + ": the " + what + " is the policy's entry " + std::to_string(i));
    }
  }
  std::string digest = e.digests.empty()
                           ? "no digest"
                           : AlgName(e.digests[0].alg) + " " + HexBytes(e.digests[0].bytes);
  return Fail(check, claim, Where(e) + ": " + digest + " is not an allowed " + what, e.pcr,
              e.index);
}

Check AppraiseCrtm(const Policy& p, const EventLog& log) {
  const std::string name = "policy-crtm";
  if (p.crtm_versions.empty())
    return Skip(name, Claim::kHardware, "the policy lists no CRTM version");
  auto events = EventsOf(log, Component::kCrtm);
  if (auto f = ExpectOne(events, name, Claim::kHardware, kPcrCrtm, "EV_S_CRTM_VERSION")) return *f;
  return AppraiseText(*events[0], p.crtm_versions, name, Claim::kHardware, "CRTM version");
}

Check AppraiseConfiguration(const Policy& p, const EventLog& log) {
  const std::string name = "policy-configuration";
  auto events = EventsOf(log, Component::kConfiguration);
  if (auto f = ExpectOne(events, name, Claim::kConfiguration, kPcrConfig, "configuration")) {
    return *f;
  }
  return AppraiseText(*events[0], p.configurations, name, Claim::kConfiguration, "configuration");
}

Check AppraiseAcpi(const Policy& p, const EventLog& log) {
  const std::string name = "policy-acpi";
  if (!p.acpi) return Skip(name, Claim::kConfiguration, "the policy does not appraise ACPI tables");
  std::map<std::string, const Event*> seen;
  for (const Event* e : EventsOf(log, Component::kAcpi)) {
    const std::string sig = Text(e->data).substr(kAcpiPrefix.size());
    if (!seen.emplace(sig, e).second) {
      return Fail(name, Claim::kConfiguration, Where(*e) + ": the table is measured twice", e->pcr,
                  e->index);
    }
    bool appraised = false;
    for (const auto& [bank, tables] : *p.acpi) {
      const Digest* d = DigestIn(*e, bank);
      if (d == nullptr) continue;
      auto it = tables.find(sig);
      if (it == tables.end()) {
        return Fail(name, Claim::kConfiguration, Where(*e) + ": the policy has no table " + sig,
                    e->pcr, e->index);
      }
      if (std::find(it->second.begin(), it->second.end(), d->bytes) == it->second.end()) {
        return Fail(name, Claim::kConfiguration,
                    Where(*e) + ": " + AlgName(bank) + " " + HexBytes(d->bytes) +
                        " is not an allowed " + sig + " table",
                    e->pcr, e->index);
      }
      appraised = true;
    }
    if (!appraised) {
      return Fail(name, Claim::kConfiguration, Where(*e) + ": the policy lists no bank the log has",
                  e->pcr, e->index);
    }
  }
  for (const auto& [bank, tables] : *p.acpi) {
    for (const auto& [sig, list] : tables) {
      if (!seen.count(sig)) {
        return Fail(name, Claim::kConfiguration,
                    "PCR 1: the policy's ACPI table " + sig + " is not measured in the log",
                    kPcrConfig);
      }
    }
  }
  return Pass(name, Claim::kConfiguration,
              "PCR 1: " + std::to_string(seen.size()) + " ACPI tables, each allowed");
}

Check AppraiseComponent(const EventLog& log, Component c, const DigestSet& allowed,
                        const std::string& name, uint32_t pcr, const std::string& what) {
  auto events = EventsOf(log, c);
  if (auto f = ExpectOne(events, name, Claim::kExecutables, pcr, what)) return *f;
  return AppraiseDigest(*events[0], allowed, name, Claim::kExecutables, what);
}

Check AppraiseInitramfs(const Policy& p, const EventLog& log) {
  const std::string name = "policy-initramfs";
  if (!p.initramfs_present)
    return Skip(name, Claim::kExecutables, "the policy has no initramfs key");
  if (p.initramfs) {
    return AppraiseComponent(log, Component::kInitramfs, *p.initramfs, name, kPcrInitramfs,
                             "initramfs");
  }
  auto events = EventsOf(log, Component::kInitramfs);
  if (!events.empty()) {
    return Fail(name, Claim::kExecutables,
                Where(*events[0]) + ": an initramfs was loaded and the policy allows none",
                kPcrInitramfs, events[0]->index);
  }
  return Pass(name, Claim::kExecutables, "PCR 9: no initramfs, as the policy requires");
}

Claim ClaimOfPcr(uint32_t pcr) {
  if (pcr == kPcrCrtm) return Claim::kHardware;
  if (pcr == kPcrConfig) return Claim::kConfiguration;
  return Claim::kExecutables;
}

Check AppraisePcrs(const Policy& p, std::span<const PcrBank> replay) {
  const std::string name = "policy-pcrs";
  if (p.pcrs.empty())
    return Skip(name, Claim::kExecutables, "the policy lists no exact PCR values");
  size_t count = 0;
  for (const auto& [bank, values] : p.pcrs) {
    if (values.empty()) continue;
    auto it = std::find_if(replay.begin(), replay.end(),
                           [bank](const PcrBank& b) { return b.alg == bank; });
    if (it == replay.end()) {
      return Fail(name, ClaimOfPcr(values.begin()->first),
                  "the log has no " + AlgName(bank) + " bank, which the policy's pcrs list",
                  values.begin()->first);
    }
    for (const auto& [pcr, want] : values) {
      if (pcr >= kNumPcrs) continue;  // ParsePolicy refuses these
      const std::vector<uint8_t>& got = it->pcrs[pcr];
      if (got != want) {
        return Fail(name, ClaimOfPcr(pcr),
                    "PCR " + std::to_string(pcr) + " " + AlgName(bank) + " is " + HexBytes(got) +
                        ", the policy requires " + HexBytes(want),
                    pcr);
      }
      ++count;
    }
  }
  return Pass(name, Claim::kExecutables, std::to_string(count) + " PCR values equal the policy's");
}

}  // namespace

std::vector<Check> AppraiseEventLog(const Policy& policy, const EventLog& log,
                                    std::span<const PcrBank> replay) {
  return {
      AppraiseCrtm(policy, log),
      AppraiseConfiguration(policy, log),
      AppraiseAcpi(policy, log),
      AppraiseComponent(log, Component::kKernel, policy.kernel, "policy-kernel", kPcrKernel,
                        "kernel"),
      AppraiseInitramfs(policy, log),
      AppraiseComponent(log, Component::kCmdline, policy.cmdline, "policy-cmdline", kPcrCmdline,
                        "command line"),
      AppraisePcrs(policy, replay),
  };
}

Result<Policy> PolicyFromEventLog(const EventLog& log, std::string id) {
  const auto one = [&log](Component c, const char* what) -> Result<const Event*> {
    auto events = EventsOf(log, c);
    if (events.size() != 1) {
      return Error(ErrorKind::kInvalidArgument,
                   std::string("policy from event log: expected one ") + what + " event, found " +
                       std::to_string(events.size()) + " (not a log of vmm's measured boot)");
    }
    return events[0];
  };
  const auto digests = [](const Event& e) {
    DigestSet set;
    for (const Digest& d : e.digests) {
      if (DigestSizeOf(d.alg)) set[d.alg].push_back(d.bytes);  // a policy names known banks
    }
    return set;
  };
  // Data that was hashed must be what the digests say, or the policy would allow another text.
  const auto hashed_data = [](const Event& e) -> Result<std::string> {
    std::vector<uint16_t> banks;
    for (const Digest& d : e.digests) banks.push_back(d.alg);
    ASSIGN_OR_RETURN(std::vector<Digest> hashes, HashAll(banks, e.data));
    if (hashes != e.digests) {
      return Error(ErrorKind::kInvalidArgument,
                   "policy from event log: " + Where(e) + ": the data does not match the digest");
    }
    return Text(e.data);
  };

  if (!internal::ValidPolicyText(id, internal::kMaxPolicyIdBytes)) {
    return Error(ErrorKind::kInvalidArgument, "policy id: at most " +
                                                  std::to_string(internal::kMaxPolicyIdBytes) +
                                                  " bytes of UTF-8, no control characters");
  }
  Policy p;
  p.id = std::move(id);
  ASSIGN_OR_RETURN(const Event* crtm, one(Component::kCrtm, "EV_S_CRTM_VERSION"));
  ASSIGN_OR_RETURN(std::string version, hashed_data(*crtm));
  if (!internal::ValidPolicyText(version, internal::kMaxCrtmVersionBytes)) {
    return Error(ErrorKind::kInvalidArgument,
                 "policy from event log: " + Where(*crtm) + ": not a version string");
  }
  p.crtm_versions.push_back(std::move(version));
  ASSIGN_OR_RETURN(const Event* config, one(Component::kConfiguration, "configuration"));
  ASSIGN_OR_RETURN(std::string config_text, hashed_data(*config));
  // The policy keeps the configuration as a JSON object, so the measured text must be that
  // object's canonical dump (which CanonicalConfiguration's is).
  const auto parsed = nlohmann::json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() ||
      parsed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) != config_text) {
    return Error(ErrorKind::kInvalidArgument,
                 "policy from event log: " + Where(*config) + ": not canonical JSON");
  }
  p.configurations.push_back(std::move(config_text));
  auto& acpi = p.acpi.emplace();
  for (const Event* e : EventsOf(log, Component::kAcpi)) {
    const std::string sig = Text(e->data).substr(kAcpiPrefix.size());
    if (!internal::ValidAcpiSignature(sig)) {
      return Error(ErrorKind::kInvalidArgument,
                   "policy from event log: " + Where(*e) + ": not an ACPI table signature");
    }
    for (const Digest& d : e->digests) {
      if (!DigestSizeOf(d.alg)) continue;
      auto& list = acpi[d.alg][sig];
      if (!list.empty()) {
        return Error(ErrorKind::kInvalidArgument,
                     "policy from event log: " + Where(*e) + ": the table is measured twice");
      }
      list.push_back(d.bytes);
    }
  }
  if (acpi.empty()) p.acpi.reset();
  ASSIGN_OR_RETURN(const Event* kernel, one(Component::kKernel, "kernel (PCR 4 EV_IPL)"));
  p.kernel = digests(*kernel);
  ASSIGN_OR_RETURN(const Event* cmdline, one(Component::kCmdline, "command line (PCR 8 EV_IPL)"));
  p.cmdline = digests(*cmdline);
  auto initramfs = EventsOf(log, Component::kInitramfs);
  if (initramfs.size() > 1) {
    return Error(ErrorKind::kInvalidArgument, "policy from event log: two initramfs events");
  }
  p.initramfs_present = true;
  if (!initramfs.empty()) p.initramfs = digests(*initramfs[0]);
  if (p.kernel.empty() || p.cmdline.empty() || (p.initramfs && p.initramfs->empty())) {
    return Error(ErrorKind::kInvalidArgument, "policy from event log: events without digests");
  }
  ASSIGN_OR_RETURN(std::vector<PcrBank> banks, ReplayEventLog(log));
  for (const PcrBank& b : banks) {
    for (uint32_t pcr = 0; pcr <= kPcrInitramfs; ++pcr) p.pcrs[b.alg][pcr] = b.pcrs[pcr];
  }
  return p;
}

}  // namespace vmm::attestation
