#include "vtpm/state/sealed_format.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "base/bytes.h"
#include "base/enum_names.h"
#include "base/hex.h"
#include "base/openssl_ptr.h"

namespace vmm::vtpm {
namespace {

constexpr size_t kOffVersion = 8;
constexpr size_t kOffKind = 12;
constexpr size_t kOffVmId = 16;
constexpr size_t kOffGeneration = 32;
constexpr size_t kOffLength = 40;
constexpr size_t kOffNonce = 48;
constexpr size_t kOffReserved = 60;
static_assert(kOffReserved + 4 == kHeaderSize);

Error Refused(const std::string& why) { return Error(ErrorKind::kProtocol, why); }

Error OpensslError(const std::string& what) {
  char buf[256] = "no detail";
  if (unsigned long e = ERR_get_error(); e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return Error(ErrorKind::kInternal, "OpenSSL " + what + " failed: " + buf);
}

void WriteHeader(std::span<uint8_t> out, const SealedHeader& h) {
  std::copy(kStateMagic.begin(), kStateMagic.end(), out.begin());
  StoreLe<uint32_t>(out, kOffVersion, h.version);
  StoreLe<uint32_t>(out, kOffKind, static_cast<uint32_t>(h.kind));
  std::copy(h.vm_id.bytes.begin(), h.vm_id.bytes.end(), out.begin() + kOffVmId);
  StoreLe<uint64_t>(out, kOffGeneration, h.generation);
  StoreLe<uint64_t>(out, kOffLength, h.plaintext_length);
  std::copy(h.nonce.begin(), h.nonce.end(), out.begin() + kOffNonce);
  StoreLe<uint32_t>(out, kOffReserved, 0);
}

enum class Direction { kDecrypt = 0, kEncrypt = 1 };  // EVP_CipherInit_ex's enc argument

// An AES-256-GCM context for `key` and `nonce` that has taken the header as additional
// authenticated data (the header is authenticated, not encrypted).
Result<EvpCipherCtxPtr> GcmAfterHeader(const Key& key, std::span<const uint8_t, kNonceSize> nonce,
                                       std::span<const uint8_t> header, Direction direction) {
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return OpensslError("EVP_CIPHER_CTX_new");
  if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(), nonce.data(),
                        static_cast<int>(direction)) != 1) {
    return OpensslError(direction == Direction::kEncrypt ? "AES-256-GCM encrypt init"
                                                         : "AES-256-GCM decrypt init");
  }
  int len = 0;
  if (EVP_CipherUpdate(ctx.get(), nullptr, &len, header.data(), static_cast<int>(header.size())) !=
      1) {
    return OpensslError("AES-256-GCM AAD");
  }
  return ctx;
}

// Encrypts or decrypts all of `in` into `out` (as many bytes: GCM is a stream mode).
Result<void> GcmUpdate(EVP_CIPHER_CTX* ctx, std::span<const uint8_t> in, uint8_t* out,
                       const char* what) {
  if (in.empty()) return Ok();
  int len = 0;
  if (EVP_CipherUpdate(ctx, out, &len, in.data(), static_cast<int>(in.size())) != 1 ||
      static_cast<size_t>(len) != in.size()) {
    return OpensslError(std::string("AES-256-GCM ") + what);
  }
  return Ok();
}

constexpr NamedValue<BlobKind> kBlobKindNames[] = {
    {BlobKind::kPermanent, "permanent"},
    {BlobKind::kVolatile, "volatile"},
};

}  // namespace

std::string_view BlobKindName(BlobKind kind) { return NameOf(kBlobKindNames, kind, "unknown"); }

Key::Key(std::span<const uint8_t, kKeySize> bytes) {
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
}
Key::~Key() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }
Key::Key(const Key& other) : bytes_(other.bytes_) {}
Key& Key::operator=(const Key& other) {
  bytes_ = other.bytes_;
  return *this;
}

Result<Key> Key::Random() {
  Key k;
  if (RAND_bytes(k.bytes_.data(), static_cast<int>(k.bytes_.size())) != 1) {
    return OpensslError("RAND_bytes (key)");
  }
  return k;
}

SecretBytes::~SecretBytes() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
    bytes_ = std::move(other.bytes_);
  }
  return *this;
}

VmId VmId::FromBytes(std::span<const uint8_t, 16> b) {
  VmId id;
  std::copy(b.begin(), b.end(), id.bytes.begin());
  return id;
}

VmId VmId::FromName(std::string_view name) {
  std::string input = "vmm-vtpm-vm-id:" + std::string(name);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // SHA-256 cannot fail on a valid input short of an allocation failure; a zero id then
  // matches no real VM's state, so loads fail closed.
  VmId id;
  if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr) == 1 &&
      len >= 16) {
    std::copy(digest, digest + 16, id.bytes.begin());
  }
  return id;
}

std::string VmId::ToHex() const { return HexBytes(bytes); }

Result<SealedHeader> ParseHeader(std::span<const uint8_t> header, const Expected& expected) {
  if (header.size() < kHeaderSize) {
    return Refused("truncated: " + std::to_string(header.size()) + " bytes, shorter than the " +
                   std::to_string(kHeaderSize) + "-byte header");
  }
  if (!std::equal(kStateMagic.begin(), kStateMagic.end(), header.begin())) {
    return Refused("bad magic: not a vTPM state file (expected \"VMMTPMST\")");
  }
  SealedHeader h;
  h.version = *LoadLe<uint32_t>(header, kOffVersion);
  if (h.version > kFormatVersion) {
    return Error(ErrorKind::kUnsupported, "format version " + std::to_string(h.version) +
                                              " is newer than this build reads (" +
                                              std::to_string(kFormatVersion) + ")");
  }
  if (h.version != kFormatVersion) {
    return Refused("unknown format version " + std::to_string(h.version));
  }
  if (*LoadLe<uint32_t>(header, kOffReserved) != 0)
    return Refused("reserved header field is not zero");
  uint32_t kind = *LoadLe<uint32_t>(header, kOffKind);
  if (kind != static_cast<uint32_t>(BlobKind::kPermanent) &&
      kind != static_cast<uint32_t>(BlobKind::kVolatile)) {
    return Refused("unknown blob kind " + std::to_string(kind));
  }
  h.kind = static_cast<BlobKind>(kind);
  if (h.kind != expected.kind) {
    return Refused("holds " + std::string(BlobKindName(h.kind)) + " state where " +
                   std::string(BlobKindName(expected.kind)) + " state was expected");
  }
  std::copy_n(header.begin() + kOffVmId, h.vm_id.bytes.size(), h.vm_id.bytes.begin());
  if (h.vm_id != expected.vm_id) {
    return Refused("belongs to another VM (VM id " + h.vm_id.ToHex() + ", this VM is " +
                   expected.vm_id.ToHex() +
                   "): a state file swapped in from another VM's directory?");
  }
  h.generation = *LoadLe<uint64_t>(header, kOffGeneration);
  if (h.generation == 0) return Refused("generation 0 is never written");
  if (h.generation < expected.min_generation) {
    return Refused("rollback: generation " + std::to_string(h.generation) +
                   " is older than the minimum " + std::to_string(expected.min_generation) +
                   " this VM has already seen");
  }
  h.plaintext_length = *LoadLe<uint64_t>(header, kOffLength);
  if (h.plaintext_length > kMaxPlaintext) {
    return Refused("header claims " + std::to_string(h.plaintext_length) +
                   " bytes of state, over the " + std::to_string(kMaxPlaintext) + "-byte limit");
  }
  std::copy_n(header.begin() + kOffNonce, kNonceSize, h.nonce.begin());
  return h;
}

Result<std::vector<uint8_t>> Seal(const Key& key, const SealParams& params,
                                  std::span<const uint8_t> plaintext) {
  if (plaintext.size() > kMaxPlaintext) {
    return InvalidArgument("vTPM state of " + std::to_string(plaintext.size()) +
                           " bytes is over the " + std::to_string(kMaxPlaintext) + "-byte limit");
  }
  if (params.generation == 0) return Error(ErrorKind::kInternal, "Seal: generation 0 is reserved");
  SealedHeader h;
  h.version = kFormatVersion;
  h.kind = params.kind;
  h.vm_id = params.vm_id;
  h.generation = params.generation;
  h.plaintext_length = plaintext.size();
  // A fresh random nonce per write: GCM's security ends the moment a (key, nonce) pair is
  // reused, and a counter would have to survive crashes and restores.
  if (RAND_bytes(h.nonce.data(), static_cast<int>(h.nonce.size())) != 1)
    return OpensslError("RAND_bytes (nonce)");

  std::vector<uint8_t> out(kHeaderSize + plaintext.size() + kTagSize);
  std::span<uint8_t> all(out);
  WriteHeader(all.first(kHeaderSize), h);

  ASSIGN_OR_RETURN(EvpCipherCtxPtr ctx,
                   GcmAfterHeader(key, h.nonce, all.first(kHeaderSize), Direction::kEncrypt));
  RETURN_IF_ERROR(GcmUpdate(ctx.get(), plaintext, out.data() + kHeaderSize, "encrypt"));
  int len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + kHeaderSize + plaintext.size(), &len) != 1 ||
      len != 0) {
    return OpensslError("AES-256-GCM encrypt final");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          out.data() + kHeaderSize + plaintext.size()) != 1) {
    return OpensslError("AES-256-GCM get tag");
  }
  return out;
}

Result<Unsealed> Unseal(const Key& key, const Expected& expected, std::span<const uint8_t> file) {
  ASSIGN_OR_RETURN(SealedHeader h, ParseHeader(file, expected));
  const uint64_t want =
      kHeaderSize + h.plaintext_length + kTagSize;  // length <= kMaxPlaintext: no overflow
  if (file.size() < want) {
    return Refused("truncated: " + std::to_string(file.size()) + " bytes, the header says " +
                   std::to_string(want));
  }
  if (file.size() > want) {
    return Refused("trailing data: " + std::to_string(file.size()) + " bytes, the header says " +
                   std::to_string(want));
  }
  const size_t n = h.plaintext_length;
  const uint8_t* ciphertext = file.data() + kHeaderSize;
  // EVP_CTRL_GCM_SET_TAG takes a non-const buffer.
  std::array<uint8_t, kTagSize> tag;
  std::copy_n(file.data() + kHeaderSize + n, kTagSize, tag.begin());

  Unsealed result{h, SecretBytes(n)};
  ASSIGN_OR_RETURN(EvpCipherCtxPtr ctx,
                   GcmAfterHeader(key, h.nonce, file.first(kHeaderSize), Direction::kDecrypt));
  RETURN_IF_ERROR(GcmUpdate(ctx.get(), std::span<const uint8_t>(ciphertext, n),
                            result.plaintext.span().data(), "decrypt"));
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1) {
    return OpensslError("AES-256-GCM set tag");
  }
  uint8_t final_block[16];
  int len = 0;
  // On a mismatch the unverified plaintext in result is cleansed by SecretBytes' destructor.
  if (EVP_DecryptFinal_ex(ctx.get(), final_block, &len) != 1) {
    ERR_clear_error();
    return Refused(
        "authentication failed (AES-GCM tag mismatch): wrong key for this VM, or the file "
        "was modified");
  }
  return result;
}

}  // namespace vmm::vtpm
