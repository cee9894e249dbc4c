// ECDSA over P-256 with SHA-256, its signature as the fixed 64 bytes r || s (each 32 bytes,
// big-endian: JWS ES256, RFC 7518 §3.4) rather than OpenSSL's DER. Header-only, like
// base/openssl_ptr.h: only targets that link libcrypto include it (the EAR signer, the audit
// trail's checkpoints).
//
//   ASSIGN_OR_RETURN(EcdsaP256Signature sig, SignEcdsaP256(key.get(), message));
#pragma once

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/openssl_ptr.h"
#include "base/result.h"

namespace vmm {

inline constexpr int kEcdsaP256CoordinateBytes = 32;
using EcdsaP256Signature = std::array<uint8_t, 2 * kEcdsaP256CoordinateBytes>;

// Signs SHA-256(message) with `key` (the caller has checked it is an EC P-256 private key). The
// error names the step that failed and OpenSSL's first queued reason (the queue is drained);
// callers wrap it with what was being signed.
inline Result<EcdsaP256Signature> SignEcdsaP256(EVP_PKEY* key, std::span<const uint8_t> message) {
  auto fail = [](std::string what) {
    if (unsigned long e = ERR_peek_error(); e != 0) {
      char reason[256];
      ERR_error_string_n(e, reason, sizeof(reason));
      what += std::string(": ") + reason;
    }
    ERR_clear_error();
    return Error(ErrorKind::kInternal, what);
  };
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  size_t der_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_len, message.data(), message.size()) != 1) {
    return fail("ECDSA P-256 signing failed");
  }
  std::vector<uint8_t> der(der_len);
  if (EVP_DigestSign(ctx.get(), der.data(), &der_len, message.data(), message.size()) != 1) {
    return fail("ECDSA P-256 signing failed");
  }
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  if (!sig) return fail("decoding the DER ECDSA signature");
  EcdsaP256Signature raw{};
  constexpr int n = kEcdsaP256CoordinateBytes;
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw.data(), n) != n ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw.data() + n, n) != n) {
    return fail("encoding the ECDSA signature as r || s");
  }
  return raw;
}

// The same for text (a JWS signing input, a checkpoint line).
inline Result<EcdsaP256Signature> SignEcdsaP256(EVP_PKEY* key, std::string_view message) {
  return SignEcdsaP256(key, std::span<const uint8_t>(
                                reinterpret_cast<const uint8_t*>(message.data()), message.size()));
}

}  // namespace vmm
