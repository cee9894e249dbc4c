// TPM 2.0 hash algorithm identifiers (TCG Algorithm Registry) with their digest sizes and
// names, for both sides that handle PCR banks: the manager's TPM commands
// (vtpm/protocol/tpm_command.h) and the event log library (attestation/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace vmm {

inline constexpr uint16_t kTpmAlgSha1 = 0x0004;
inline constexpr uint16_t kTpmAlgSha256 = 0x000B;
inline constexpr uint16_t kTpmAlgSha384 = 0x000C;
inline constexpr uint16_t kTpmAlgSha512 = 0x000D;
inline constexpr uint16_t kTpmAlgSm3_256 = 0x0012;

// Digest bytes of a hash algorithm listed above, or 0 for any other.
constexpr size_t TpmAlgDigestSize(uint16_t alg) {
  switch (alg) {
    case kTpmAlgSha1:
      return 20;
    case kTpmAlgSha256:
    case kTpmAlgSm3_256:
      return 32;
    case kTpmAlgSha384:
      return 48;
    case kTpmAlgSha512:
      return 64;
    default:
      return 0;
  }
}

// "sha1", "sha256", ... for an algorithm listed above, "" for any other (callers name those).
constexpr std::string_view TpmAlgKnownName(uint16_t alg) {
  switch (alg) {
    case kTpmAlgSha1:
      return "sha1";
    case kTpmAlgSha256:
      return "sha256";
    case kTpmAlgSha384:
      return "sha384";
    case kTpmAlgSha512:
      return "sha512";
    case kTpmAlgSm3_256:
      return "sm3_256";
    default:
      return "";
  }
}

// The algorithm TpmAlgKnownName calls `name`, or nullopt for any other text.
constexpr std::optional<uint16_t> TpmAlgByKnownName(std::string_view name) {
  for (uint16_t alg : {kTpmAlgSha1, kTpmAlgSha256, kTpmAlgSha384, kTpmAlgSha512, kTpmAlgSm3_256}) {
    if (TpmAlgKnownName(alg) == name) return alg;
  }
  return std::nullopt;
}

}  // namespace vmm
