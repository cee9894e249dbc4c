// The on-disk format of a sealed vTPM state blob: pure functions over byte spans, no I/O.
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> file, Seal(key, {vm, BlobKind::kPermanent, 7}, blob));
//   ASSIGN_OR_RETURN(Unsealed u, Unseal(key, {vm, BlobKind::kPermanent}, file));
//
// Layout (little-endian; ARCHITECTURE.md §6: sealed with AES-256-GCM under a per-VM key):
//
//   0  magic "VMMTPMST"        8 bytes
//   8  format version          u32 (kFormatVersion)
//   12 blob kind               u32 (BlobKind)
//   16 VM id                   16 bytes
//   32 generation              u64, >= 1, one more on every write
//   40 plaintext length        u64, <= kMaxPlaintext
//   48 nonce                   12 bytes, fresh from RAND_bytes for every Seal
//   60 reserved                u32, must be 0
//   64 ciphertext              plaintext length bytes, AES-256-GCM
//   .. tag                     16 bytes
//
// The whole 64-byte header is the GCM additional data, so no header field can be changed
// without the tag check failing. The file size must be exactly 64 + length + 16.
//
// Ownership: Key and SecretBytes own their bytes and OPENSSL_cleanse them when destroyed;
// every function here borrows its spans. Seal's output holds only ciphertext.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::vtpm {

inline constexpr std::array<uint8_t, 8> kStateMagic = {'V', 'M', 'M', 'T', 'P', 'M', 'S', 'T'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kHeaderSize = 64;
inline constexpr size_t kNonceSize = 12;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kKeySize = 32;
// libtpms state is tens of KiB; a larger file is refused before it is read.
inline constexpr uint64_t kMaxPlaintext = 1024 * 1024;

enum class BlobKind : uint32_t {
  kPermanent = 1,  // libtpms TPMLIB_STATE_PERMANENT: NV, seeds, hierarchy auth
  kVolatile = 2,   // libtpms TPMLIB_STATE_VOLATILE: saved by TPM2_Shutdown(STATE)
};
std::string_view BlobKindName(BlobKind kind);

// A 32-byte AES-256 key. Copies are independent; each one is cleansed when destroyed.
class Key {
 public:
  Key() = default;
  explicit Key(std::span<const uint8_t, kKeySize> bytes);
  ~Key();
  Key(const Key& other);
  Key& operator=(const Key& other);

  static Result<Key> Random();  // RAND_bytes
  std::span<const uint8_t, kKeySize> bytes() const { return bytes_; }

 private:
  std::array<uint8_t, kKeySize> bytes_{};
};

// A heap buffer of fixed size for plaintext. Move-only, never reallocated (a reallocation
// would leave an uncleansed copy behind), cleansed when destroyed.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size) : bytes_(size) {}
  explicit SecretBytes(std::span<const uint8_t> data) : bytes_(data.begin(), data.end()) {}
  ~SecretBytes();
  SecretBytes(SecretBytes&& other) noexcept = default;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  std::span<uint8_t> span() { return bytes_; }
  std::span<const uint8_t> span() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

// Which VM a state belongs to: a 16-byte UUID, or a hash of the VM's name.
struct VmId {
  std::array<uint8_t, 16> bytes{};

  static VmId FromBytes(std::span<const uint8_t, 16> b);
  // First 16 bytes of SHA-256("vmm-vtpm-vm-id:" + name).
  static VmId FromName(std::string_view name);
  std::string ToHex() const;
  bool operator==(const VmId&) const = default;
};

// The header's fields, as parsed (before the tag is checked: not yet authentic).
struct SealedHeader {
  uint32_t version = 0;
  BlobKind kind = BlobKind::kPermanent;
  VmId vm_id;
  uint64_t generation = 0;
  uint64_t plaintext_length = 0;
  std::array<uint8_t, kNonceSize> nonce{};
};

// What the reader expects of a file. min_generation > 0 turns on rollback detection: a
// file whose generation is lower is refused.
struct Expected {
  VmId vm_id;
  BlobKind kind = BlobKind::kPermanent;
  uint64_t min_generation = 0;
};

// Fields the writer chooses; the nonce is drawn by Seal.
struct SealParams {
  VmId vm_id;
  BlobKind kind = BlobKind::kPermanent;
  uint64_t generation = 1;
};

// Checks magic, version, kind, VM id, generation, reserved and the length limit of the
// first kHeaderSize bytes. Errors name the reason; kind kProtocol (kUnsupported for a
// newer format version).
Result<SealedHeader> ParseHeader(std::span<const uint8_t> header, const Expected& expected);

// Encrypts `plaintext` into a complete file image (header, ciphertext, tag).
Result<std::vector<uint8_t>> Seal(const Key& key, const SealParams& params,
                                  std::span<const uint8_t> plaintext);

// Checks a complete file image and decrypts it. Refuses, naming the reason: short or long
// files, bad magic or version, another VM's or another kind's state, rollback below
// expected.min_generation, and any change to header, nonce, ciphertext or tag (GCM tag).
struct Unsealed {
  SealedHeader header;  // authentic: covered by the tag
  SecretBytes plaintext;
};
Result<Unsealed> Unseal(const Key& key, const Expected& expected, std::span<const uint8_t> file);

}  // namespace vmm::vtpm
