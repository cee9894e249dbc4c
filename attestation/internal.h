// Shared by the library's own .cc files; not part of its interface.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/event_log.h"
#include "base/result.h"

namespace vmm::attestation::internal {

inline constexpr size_t kHashChunk = 1u << 20;

// The EVP digest of a TPM algorithm, or nullptr (unknown, or missing from this OpenSSL).
const EVP_MD* EvpFor(uint16_t alg);

// Digests, one per algorithm, of the concatenation of `parts`.
Result<std::vector<Digest>> HashChunks(std::span<const uint16_t> algs,
                                       std::span<const std::span<const uint8_t>> parts);

// Policy text rules (appraisal.h), shared by the parser and PolicyFromEventLog so that every
// policy the library makes parses again.
inline constexpr size_t kMaxPolicyIdBytes = 1024;
inline constexpr size_t kMaxCrtmVersionBytes = 4096;
// Four printable ASCII characters, no space.
bool ValidAcpiSignature(std::string_view sig);
// Valid UTF-8 of at most `max` bytes without control characters.
bool ValidPolicyText(std::string_view text, size_t max);

}  // namespace vmm::attestation::internal
