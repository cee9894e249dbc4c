// The operator's checkpoint key: an EC P-256 key whose private half signs the audit log's
// checkpoints (ES256: ECDSA over SHA-256, the signature as r || s) and whose public half
// `vmm audit verify --key` checks them with (ARCHITECTURE.md §10).
//
//   ASSIGN_OR_RETURN(CheckpointSigner signer, CheckpointSigner::Load("/etc/vmm/audit.key"));
//   ASSIGN_OR_RETURN(std::string sig_hex, signer.Sign(CheckpointMessage(record)));
//   ASSIGN_OR_RETURN(CheckpointVerifier key, CheckpointVerifier::Load("audit.pub.pem"));
//   bool good = key.Verify(message, sig_hex);
//
// Make a key: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out audit.key
//             openssl pkey -in audit.key -pubout -out audit.pub.pem
#pragma once

#include <string>
#include <string_view>

#include "base/openssl_ptr.h"
#include "base/result.h"

namespace vmm::audit {

// SHA-256 of the key's DER SubjectPublicKeyInfo, hex: the "key_fpr" of records.
Result<std::string> PublicKeyFingerprint(EVP_PKEY* key);

class CheckpointSigner {
 public:
  // A PEM EC P-256 private key in a regular file that group and others cannot read or write.
  static Result<CheckpointSigner> Load(const std::string& path);
  const std::string& fingerprint() const { return fingerprint_; }
  // 128 hex digits: r || s, each 32 bytes big-endian.
  Result<std::string> Sign(std::string_view message) const;

 private:
  EvpPkeyPtr key_;
  std::string fingerprint_;
};

class CheckpointVerifier {
 public:
  // A PEM EC P-256 public key (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY"), at most 16 KiB.
  static Result<CheckpointVerifier> Load(const std::string& path);
  static Result<CheckpointVerifier> FromPem(std::string_view pem);
  const std::string& fingerprint() const { return fingerprint_; }
  bool Verify(std::string_view message, std::string_view sig_hex) const;

 private:
  EvpPkeyPtr key_;
  std::string fingerprint_;
};

}  // namespace vmm::audit
