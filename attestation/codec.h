// Base64 and hex as the verifier's documents spell them (evidence.h, ear.h's base64url, the
// guest's console lines): one strict, canonical form each, so that the same bytes always have the
// same text and nothing else is accepted. Pure functions; errors say what is wrong, not where (the
// caller names the field).
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> log, DecodeBase64Strict(text, kMaxEventLogBytes));
//   std::string text = EncodeBase64(log);   // decodes back to `log`, and is the only text that
//   does
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::attestation {

// RFC 4648 §4 with padding.
std::string EncodeBase64(std::span<const uint8_t> bytes);
// Only the canonical RFC 4648 §4 text: a multiple of 4 characters of the alphabet, '=' only as
// the padding of the last group, zero pad bits, no whitespace; at most `max` bytes decoded.
Result<std::vector<uint8_t>> DecodeBase64Strict(std::string_view text, size_t max);
// Well-formed UTF-8 (Unicode §3.9 D92: no overlong forms, surrogates or code points above
// U+10FFFF), as JSON text must be (RFC 8259 §8.1).
bool ValidUtf8(std::string_view text);
// Lowercase hex digits, two a byte (any number of bytes, none included).
Result<std::vector<uint8_t>> DecodeLowerHex(std::string_view text);

}  // namespace vmm::attestation
