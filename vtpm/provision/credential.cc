#include "vtpm/provision/credential.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <memory>

#include "vtpm/provision/ek_template.h"
#include "vtpm/provision/ossl.h"

namespace vmm::vtpm {

namespace {

constexpr size_t kDigest = 32;  // SHA-256

void Put32(std::vector<uint8_t>& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(uint8_t(v >> shift));
}

Result<std::vector<uint8_t>> HmacSha256(std::span<const uint8_t> key,
                                        std::span<const uint8_t> data) {
  std::vector<uint8_t> out(kDigest);
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), int(key.size()), data.data(), data.size(), out.data(), &len) ==
          nullptr ||
      len != kDigest) {
    return OpenSslError("HMAC-SHA256");
  }
  return out;
}

Result<std::vector<uint8_t>> OaepEncrypt(EVP_PKEY* ek, std::span<const uint8_t> seed) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek, nullptr));
  // The label includes its NUL (Part 1 §24.4, B.10.4); OpenSSL takes ownership of a copy.
  static constexpr char kLabel[] = "IDENTITY";
  void* label = OPENSSL_memdup(kLabel, sizeof kLabel);
  if (!ctx || label == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, int(sizeof kLabel)) != 1) {
    OPENSSL_free(label);
    return OpenSslError("setting up RSA-OAEP for the EK");
  }
  size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, seed.data(), seed.size()) != 1) {
    return OpenSslError("RSA-OAEP size");
  }
  std::vector<uint8_t> out(len);
  if (EVP_PKEY_encrypt(ctx.get(), out.data(), &len, seed.data(), seed.size()) != 1) {
    return OpenSslError("RSA-OAEP encrypting the seed");
  }
  out.resize(len);
  return out;
}

Result<std::vector<uint8_t>> Aes128CfbZeroIv(std::span<const uint8_t> key,
                                             std::span<const uint8_t> plain) {
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  const uint8_t iv[16] = {};
  std::vector<uint8_t> out(plain.size() + 16);
  int n = 0, tail = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_cfb128(), nullptr, key.data(), iv) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &n, plain.data(), int(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + n, &tail) != 1) {
    return OpenSslError("AES-128-CFB");
  }
  out.resize(size_t(n + tail));
  return out;
}

}  // namespace

std::vector<uint8_t> KdfaSha256(std::span<const uint8_t> key, std::string_view label,
                                std::span<const uint8_t> context_u,
                                std::span<const uint8_t> context_v, uint32_t bits) {
  std::vector<uint8_t> out;
  for (uint32_t counter = 1; out.size() * 8 < bits; ++counter) {
    std::vector<uint8_t> msg;
    Put32(msg, counter);
    msg.insert(msg.end(), label.begin(), label.end());
    if (label.empty() || label.back() != '\0') msg.push_back(0);  // the label's terminating NUL
    msg.insert(msg.end(), context_u.begin(), context_u.end());
    msg.insert(msg.end(), context_v.begin(), context_v.end());
    Put32(msg, bits);
    auto block = HmacSha256(key, msg);
    if (!block) return {};
    out.insert(out.end(), block->begin(), block->end());
  }
  out.resize((bits + 7) / 8);
  return out;
}

Result<CredentialBlob> MakeCredential(const TPMT_PUBLIC& ek_public,
                                      std::span<const uint8_t> object_name,
                                      std::span<const uint8_t> credential) {
  if (credential.empty() || credential.size() > kDigest) {
    return InvalidArgument("a credential is 1 to 32 bytes, not " +
                           std::to_string(credential.size()));
  }
  if (object_name.size() < 2 || object_name.size() > sizeof(TPMU_NAME)) {
    return InvalidArgument("an object name is 2 to " + std::to_string(sizeof(TPMU_NAME)) +
                           " bytes");
  }
  if (ek_public.type != TPM2_ALG_RSA) {
    return Error(ErrorKind::kUnsupported, "MakeCredential: only RSA EKs are supported");
  }
  const TPMT_SYM_DEF_OBJECT& sym = ek_public.parameters.rsaDetail.symmetric;
  if (ek_public.nameAlg != TPM2_ALG_SHA256 || sym.algorithm != TPM2_ALG_AES ||
      sym.keyBits.aes != 128 || sym.mode.aes != TPM2_ALG_CFB) {
    return Error(ErrorKind::kUnsupported,
                 "MakeCredential: the EK must have nameAlg SHA-256 and AES-128-CFB");
  }
  ASSIGN_OR_RETURN(EvpPkeyPtr ek, PublicAreaToKey(ek_public));

  std::vector<uint8_t> seed(kDigest);
  if (RAND_bytes(seed.data(), int(seed.size())) != 1) return OpenSslError("RAND_bytes");
  CredentialBlob out;
  ASSIGN_OR_RETURN(out.encrypted_secret, OaepEncrypt(ek.get(), seed));

  const std::vector<uint8_t> sym_key = KdfaSha256(seed, "STORAGE", object_name, {}, 128);
  const std::vector<uint8_t> hmac_key = KdfaSha256(seed, "INTEGRITY", {}, {}, 256);
  if (sym_key.size() != 16 || hmac_key.size() != kDigest) return OpenSslError("KDFa");
  std::vector<uint8_t> plain = {uint8_t(credential.size() >> 8), uint8_t(credential.size())};
  plain.insert(plain.end(), credential.begin(), credential.end());
  ASSIGN_OR_RETURN(std::vector<uint8_t> enc_identity, Aes128CfbZeroIv(sym_key, plain));

  std::vector<uint8_t> mac_input = enc_identity;
  mac_input.insert(mac_input.end(), object_name.begin(), object_name.end());
  ASSIGN_OR_RETURN(std::vector<uint8_t> outer_hmac, HmacSha256(hmac_key, mac_input));
  out.id_object = {0x00, uint8_t(kDigest)};
  out.id_object.insert(out.id_object.end(), outer_hmac.begin(), outer_hmac.end());
  out.id_object.insert(out.id_object.end(), enc_identity.begin(), enc_identity.end());
  OPENSSL_cleanse(seed.data(), seed.size());
  return out;
}

}  // namespace vmm::vtpm
