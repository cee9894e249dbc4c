// Checks and reference-value policies (ARCHITECTURE.md §6): what `vmm-verify` reports per step,
// and the tenant's policy that the replayed event log is appraised against.
//
// Policy format "vmm-policy/1" (strict JSON like the evidence bundle; at most kMaxPolicyBytes):
//   {
//     "format": "vmm-policy/1",
//     "id": "<text>",                         // becomes ear.appraisal-policy-id
//     "crtm_versions": ["vmm 0.4.0", ...],    // allowed EV_S_CRTM_VERSION strings (PCR 0)
//     "kernel":    {"sha256": ["<hex>", ...], "sha384": [...]},   // PCR 4 EV_IPL digests
//     "initramfs": {"sha256": [...], ...} | null,                 // PCR 9; null: none allowed
//     "cmdline":   {"sha256": [...], ...},                        // PCR 8
//     "configuration": {<the canonical configuration object>, ...} | [<several>],
//                                              // PCR 1: the configuration event's JSON must
//                                              // equal one of these (the VM's shape)
//     "acpi": {"sha256": {"<SIG>": [...]}, ...} | null,  // PCR 1 "ACPI <SIG>" events; null:
//                                              // not appraised (exact PCR 1 still can be)
//     "pcrs": {"sha256": {"0": "<hex>", ...}}  // PCRs that must equal these values exactly
//   }
// A component is appraised in every bank the policy lists for it and the log carries (none in
// common fails it); a component key that is absent is not appraised (a "skip" check), except
// that `kernel`, `cmdline` and `configuration` are required keys. Lists and bank objects are
// never empty; digests are hex (either case) of the bank's size; repeated keys are errors.
// Events are found by PCR and type (the quote covers digests, not event data): CRTM = PCR 0
// EV_S_CRTM_VERSION, configuration = PCR 1 EV_PLATFORM_CONFIG_FLAGS whose data does not start
// "ACPI ", ACPI = those that do, kernel/cmdline/initramfs = EV_IPL in PCR 4/8/9; each must
// occur exactly once (initramfs: at most once). The CRTM version and the configuration are
// compared by hashing the policy's text (the canonical JSON dump) against the event's digest.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attestation/event_log.h"
#include "base/result.h"

namespace vmm::attestation {

enum class CheckStatus { kPass, kFail, kSkip };

// The AR4SI trustworthiness claim a check feeds (draft-ietf-rats-ar4si).
enum class Claim {
  kNone,
  kInstanceIdentity,  // the AK, its certificate and binding
  kConfiguration,     // the VM shape, ACPI tables (PCR 1)
  kExecutables,       // kernel, initramfs, command line (PCRs 4, 8, 9)
  kFileSystem,
  kHardware,  // the vTPM's identity (EK certificate)
  kRuntimeOpaque,
  kStorageOpaque,
  kSourcedData,
};

struct Check {
  std::string name;  // e.g. "ca-chain", "quote-signature", "policy-kernel"
  CheckStatus status = CheckStatus::kSkip;
  std::string reason;  // why it failed or was skipped; what matched when it passed
  Claim claim = Claim::kNone;
  std::optional<uint32_t> pcr;          // the PCR at fault, if one
  std::optional<uint32_t> event_index;  // the event at fault (EventLog::events index), if one
};

inline constexpr size_t kMaxPolicyBytes = 1u << 20;
inline constexpr std::string_view kPolicyFormat = "vmm-policy/1";

// bank (TPM_ALG_ID) -> allowed digests
using DigestSet = std::map<uint16_t, std::vector<std::vector<uint8_t>>>;

struct Policy {
  std::string id;
  std::vector<std::string> crtm_versions;  // empty: key absent (not appraised)
  DigestSet kernel;
  std::optional<DigestSet> initramfs;  // nullopt: "initramfs": null
  bool initramfs_present = false;      // false: key absent (not appraised)
  DigestSet cmdline;
  std::vector<std::string> configurations;  // canonical JSON text of each allowed object
  // bank -> table signature -> allowed digests; nullopt: absent or null (not appraised)
  std::optional<std::map<uint16_t, std::map<std::string, std::vector<std::vector<uint8_t>>>>> acpi;
  std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>> pcrs;
};

Result<Policy> ParsePolicy(std::span<const uint8_t> json);
std::string SerializePolicy(const Policy& policy);

// The reference values of a log made by this VMM's measured-boot scheme (`vmm measure
// --policy-out`): its kernel, initramfs, command line, configuration, CRTM version, ACPI
// digests, and PCRs 0-9 exact in every bank.
Result<Policy> PolicyFromEventLog(const EventLog& log, std::string id);

// Appraises a log whose replay already matched the quote: one Check per component, failures
// naming the PCR and the event.
std::vector<Check> AppraiseEventLog(const Policy& policy, const EventLog& log,
                                    std::span<const PcrBank> replay);

}  // namespace vmm::attestation
