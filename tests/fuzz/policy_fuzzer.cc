// Reference-value policies (attestation/appraisal.h) as a verifier meets them: a tenant's
// policy file and, from the same input, an event log sent by a VM.
//
// Input: u16 n (little endian), n bytes of policy JSON, the rest an event log.
// Checked: no crash; a parsed policy serializes to text that parses back and serializes
// identically; appraisal gives the seven checks in order, failures name a PCR below 24 and an
// event of the log; a policy made from the log parses back and the log passes it in every check.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "attestation/appraisal.h"
#include "attestation/event_log.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace vmm::attestation;

std::span<const uint8_t> S(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Serialize -> parse -> serialize is a fixed point.
void CheckRoundTrip(const Policy& p) {
  const std::string text = SerializePolicy(p);
  auto back = ParsePolicy(S(text));
  CHECK(back.has_value());
  CHECK(SerializePolicy(*back) == text);
}

void CheckAppraisal(const Policy& p, const EventLog& log, std::span<const PcrBank> replay,
                    bool must_pass) {
  static const char* const kNames[] = {"policy-crtm",   "policy-configuration", "policy-acpi",
                                       "policy-kernel", "policy-initramfs",     "policy-cmdline",
                                       "policy-pcrs"};
  std::vector<Check> checks = AppraiseEventLog(p, log, replay);
  CHECK(checks.size() == std::size(kNames));
  for (size_t i = 0; i < checks.size(); ++i) {
    const Check& c = checks[i];
    CHECK(c.name == kNames[i]);
    CHECK(!c.reason.empty());
    if (c.status == CheckStatus::kFail) {
      CHECK(c.pcr.has_value() && *c.pcr < kNumPcrs);
      CHECK(!c.event_index || *c.event_index < log.events.size());
    }
    if (must_pass) CHECK(c.status == CheckStatus::kPass);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t n = std::min<size_t>(data[0] | data[1] << 8, size - 2);
  std::span<const uint8_t> policy_bytes(data + 2, n);
  std::span<const uint8_t> log_bytes(data + 2 + n, size - 2 - n);

  auto policy = ParsePolicy(policy_bytes);
  if (policy) CheckRoundTrip(*policy);

  ParseLimits limits;
  limits.max_events = 256;
  auto log = ParseEventLog(log_bytes, limits);
  if (!log) return 0;
  auto replay = ReplayEventLog(*log);
  if (!replay) return 0;
  if (policy) CheckAppraisal(*policy, *log, *replay, false);

  auto own = PolicyFromEventLog(*log, "fuzz");
  if (own) {
    CheckRoundTrip(*own);
    auto reparsed = ParsePolicy(S(SerializePolicy(*own)));
    CHECK(reparsed.has_value());
    CheckAppraisal(*reparsed, *log, *replay, true);
  }
  return 0;
}
