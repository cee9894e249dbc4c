// SHA-256 as 64 lowercase hexadecimal digits: the form in which the launch policy, the audit
// trail and the API name image digests. Header-only: only targets that link libcrypto include
// it.
//
//   Sha256Hex("")  -> "e3b0c442...b855"
//   Sha256Hex(std::span<const uint8_t>(image))
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/hex.h"

namespace vmm {

// Empty only if OpenSSL itself fails (no SHA-256 provider, no memory); callers that must not
// go on without a digest check for that.
inline std::string Sha256Hex(std::span<const uint8_t> bytes) {
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  return HexBytes(std::span<const uint8_t>(md, len));
}

inline std::string Sha256Hex(std::string_view bytes) {
  return Sha256Hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

}  // namespace vmm
