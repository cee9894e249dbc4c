#include "vmm/manager/audit/checkpoint_key.h"

#include <fcntl.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "base/ecdsa_p256.h"
#include "base/hex.h"
#include "base/unique_fd.h"

namespace vmm::audit {
namespace {

constexpr size_t kMaxKeyFileBytes = 16 * 1024;

// Reads a small key file; with `private_key`, refuses one that group or others may access.
Result<std::string> ReadKeyFile(const std::string& path, bool private_key) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    return Error(errno == ENOENT ? ErrorKind::kInvalidArgument : ErrorKind::kSystem,
                 "opening key file '" + path + "'", errno);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoError("stat of key file '" + path + "'");
  if (!S_ISREG(st.st_mode)) return InvalidArgument("key file '" + path + "' is not a regular file");
  if (private_key && (st.st_mode & 077) != 0) {
    return InvalidArgument("key file '" + path +
                           "' may be read or written by group or others: " + "chmod 600 it");
  }
  if (st.st_size > static_cast<off_t>(kMaxKeyFileBytes)) {
    return InvalidArgument("key file '" + path + "' is larger than 16 KiB");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("reading key file '" + path + "'");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return text;
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &len) != 1) return false;
  return std::string(group) == "prime256v1" || std::string(group) == "P-256";
}

}  // namespace

Result<std::string> PublicKeyFingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return Error(ErrorKind::kInternal, "encoding the public key (i2d_PUBKEY)");
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), md);
  OPENSSL_free(der);
  return HexBytes(md);
}

Result<CheckpointSigner> CheckpointSigner::Load(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(path, /*private_key=*/true));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key) return InvalidArgument("key file '" + path + "' is not a PEM private key");
  if (!IsP256(key.get())) return InvalidArgument("key file '" + path + "' is not an EC P-256 key");
  CheckpointSigner s;
  ASSIGN_OR_RETURN(s.fingerprint_, PublicKeyFingerprint(key.get()));
  s.key_ = std::move(key);
  return s;
}

Result<std::string> CheckpointSigner::Sign(std::string_view message) const {
  auto sig = SignEcdsaP256(key_.get(), message);
  if (!sig) return sig.error().Wrap("signing an audit checkpoint");
  return HexBytes(*sig);
}

Result<CheckpointVerifier> CheckpointVerifier::FromPem(std::string_view pem) {
  if (pem.size() > kMaxKeyFileBytes) return InvalidArgument("the public key is larger than 16 KiB");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return InvalidArgument("not a PEM public key (BEGIN PUBLIC KEY)");
  if (!IsP256(key.get())) return InvalidArgument("the public key is not an EC P-256 key");
  CheckpointVerifier v;
  ASSIGN_OR_RETURN(v.fingerprint_, PublicKeyFingerprint(key.get()));
  v.key_ = std::move(key);
  return v;
}

Result<CheckpointVerifier> CheckpointVerifier::Load(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(path, /*private_key=*/false));
  auto v = FromPem(pem);
  if (!v) return v.error().Wrap("key file '" + path + "'");
  return v;
}

bool CheckpointVerifier::Verify(std::string_view message, std::string_view sig_hex) const {
  auto raw = ParseHexBytes(sig_hex);
  if (!raw || raw->size() != 2 * kEcdsaP256CoordinateBytes) return false;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw->data(), kEcdsaP256CoordinateBytes, nullptr);
  BIGNUM* s =
      BN_bin2bn(raw->data() + kEcdsaP256CoordinateBytes, kEcdsaP256CoordinateBytes, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return false;
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(der_len),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  OPENSSL_free(der);
  return ok;
}

}  // namespace vmm::audit
