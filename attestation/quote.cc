#include "attestation/quote.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <tss2/tss2_mu.h>

#include "attestation/event_log.h"
#include "attestation/internal.h"
#include "base/hex.h"

namespace vmm::attestation {
namespace {

Error Bad(const std::string& what) { return Error(ErrorKind::kProtocol, what); }

std::string Rc(TSS2_RC rc) { return "tss2-mu " + Hex(rc, 8); }

// Unmarshals exactly `bytes`; anything left over is an error.
template <typename T, typename F>
Result<T> Unmarshal(F fn, std::span<const uint8_t> bytes, const std::string& what) {
  T out{};
  size_t offset = 0;
  TSS2_RC rc = fn(bytes.data(), bytes.size(), &offset, &out);
  if (rc != TSS2_RC_SUCCESS) return Bad(what + " does not unmarshal (" + Rc(rc) + ")");
  if (offset != bytes.size()) {
    return Bad(what + " has " + std::to_string(bytes.size() - offset) + " trailing bytes");
  }
  return out;
}

Result<EvpPkeyPtr> KeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  EvpPkeyPtr key = PublicKeyFromParams(type, bld);
  if (!key)
    return OpenSslError(ErrorKind::kProtocol, std::string("the AK's ") + type + " public key");
  return key;
}

Result<EvpPkeyPtr> EccKey(const TPMT_PUBLIC& pub) {
  const TPMS_ECC_PARMS& p = pub.parameters.eccDetail;
  if (p.curveID != TPM2_ECC_NIST_P256) {
    return Bad("the AK's curve " + Hex(p.curveID, 4) + " is not NIST P-256");
  }
  const TPM2B_ECC_PARAMETER& x = pub.unique.ecc.x;
  const TPM2B_ECC_PARAMETER& y = pub.unique.ecc.y;
  if (x.size > 32 || y.size > 32) return Bad("the AK's point has coordinates over 32 bytes");
  uint8_t point[65] = {0x04};
  std::copy(x.buffer, x.buffer + x.size, point + 1 + (32 - x.size));
  std::copy(y.buffer, y.buffer + y.size, point + 33 + (32 - y.size));
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) !=
          1) {
    return OpenSslError(ErrorKind::kInternal, "building the AK's EC parameters");
  }
  return KeyFromParams("EC", bld.get());
}

Result<EvpPkeyPtr> RsaKey(const TPMT_PUBLIC& pub) {
  const TPMS_RSA_PARMS& p = pub.parameters.rsaDetail;
  if (p.keyBits != 2048 || pub.unique.rsa.size != 256) {
    return Bad("the AK's RSA modulus is " + std::to_string(pub.unique.rsa.size * 8) +
               " bits, not 2048");
  }
  BnPtr n(BN_bin2bn(pub.unique.rsa.buffer, pub.unique.rsa.size, nullptr));
  BnPtr e(BN_new());
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!n || !e || !bld || BN_set_word(e.get(), p.exponent == 0 ? 65537 : p.exponent) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return OpenSslError(ErrorKind::kInternal, "building the AK's RSA parameters");
  }
  return KeyFromParams("RSA", bld.get());
}

const EVP_MD* SignatureMd(uint16_t hash_alg) {
  switch (hash_alg) {
    case TPM2_ALG_SHA256:
    case TPM2_ALG_SHA384:
    case TPM2_ALG_SHA512:
      return internal::EvpFor(hash_alg);
    default:
      return nullptr;  // SHA-1 and anything else are refused
  }
}

Result<TPMT_SIGNATURE> UnmarshalSignature(std::span<const uint8_t> bytes) {
  return Unmarshal<TPMT_SIGNATURE>(Tss2_MU_TPMT_SIGNATURE_Unmarshal, bytes,
                                   "the signature (TPMT_SIGNATURE)");
}

Result<SignatureInfo> InfoOf(const TPMT_SIGNATURE& sig) {
  SignatureInfo info{sig.sigAlg, 0};
  if (sig.sigAlg == TPM2_ALG_ECDSA) {
    info.hash_alg = sig.signature.ecdsa.hash;
  } else if (sig.sigAlg == TPM2_ALG_RSASSA) {
    info.hash_alg = sig.signature.rsassa.hash;
  } else {
    return Bad("the signature scheme " + Hex(sig.sigAlg, 4) + " is neither ECDSA nor RSASSA");
  }
  if (SignatureMd(info.hash_alg) == nullptr) {
    return Bad("the signature's hash " + AlgName(info.hash_alg) +
               " is refused (SHA-256, -384 or "
               "-512 only)");
  }
  return info;
}

// One INTEGER of an ECDSA-Sig-Value (RFC 3279 §2.2.3) from a TPM's unsigned big-endian value:
// minimal, with a zero byte before a set top bit. False when it is wider than P-256's 32 bytes
// (such a value is not below the group order, so the signature cannot verify).
bool AppendDerInteger(std::vector<uint8_t>& der, std::span<const uint8_t> value) {
  while (!value.empty() && value[0] == 0) value = value.subspan(1);
  if (value.size() > 32) return false;
  const bool pad = value.empty() || (value[0] & 0x80) != 0;
  der.push_back(0x02);
  der.push_back(static_cast<uint8_t>(value.size() + (pad ? 1 : 0)));
  if (pad) der.push_back(0x00);
  der.insert(der.end(), value.begin(), value.end());
  return true;
}

// A Name's form (Part 1 §16): the algorithm, big-endian, then its digest of `parts`.
Result<std::vector<uint8_t>> AlgAndDigest(uint16_t alg,
                                          std::span<const std::span<const uint8_t>> parts) {
  uint16_t algs[] = {alg};
  ASSIGN_OR_RETURN(std::vector<Digest> digest, internal::HashChunks(algs, parts));
  std::vector<uint8_t> out = {static_cast<uint8_t>(alg >> 8), static_cast<uint8_t>(alg)};
  out.insert(out.end(), digest[0].bytes.begin(), digest[0].bytes.end());
  return out;
}

}  // namespace

Result<AkPublic> ParseAkPublic(std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(TPMT_PUBLIC pub, Unmarshal<TPMT_PUBLIC>(Tss2_MU_TPMT_PUBLIC_Unmarshal, bytes,
                                                           "the AK's public area"));
  AkPublic ak;
  ak.type = pub.type;
  ak.name_alg = pub.nameAlg;
  ak.attributes = pub.objectAttributes;
  if ((pub.objectAttributes & kAkRequiredAttributes) != kAkRequiredAttributes ||
      (pub.objectAttributes & kAkForbiddenAttributes) != 0) {
    return Bad("the AK's attributes " + Hex(pub.objectAttributes, 8) +
               " are not those of an attestation key (restricted, sign, fixedTPM, fixedParent, "
               "sensitiveDataOrigin, not decrypt)");
  }
  const EVP_MD* md = SignatureMd(pub.nameAlg);
  if (md == nullptr) return Bad("the AK's name algorithm " + Hex(pub.nameAlg, 4) + " is refused");
  if (pub.type == TPM2_ALG_ECC) {
    ASSIGN_OR_RETURN(ak.key, EccKey(pub));
  } else if (pub.type == TPM2_ALG_RSA) {
    ASSIGN_OR_RETURN(ak.key, RsaKey(pub));
  } else {
    return Bad("the AK's type " + Hex(pub.type, 4) + " is neither ECC nor RSA");
  }
  ak.verifier.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, ak.key.get(), nullptr));
  if (!ak.verifier || EVP_PKEY_verify_init(ak.verifier.get()) != 1) {
    return OpenSslError(ErrorKind::kInternal, "setting up the AK's signature checks");
  }
  // The name hashes the public area exactly as marshalled (Part 1 §16): these bytes.
  std::span<const uint8_t> parts[] = {bytes};
  ASSIGN_OR_RETURN(ak.name, AlgAndDigest(pub.nameAlg, parts));
  return ak;
}

Result<std::vector<uint8_t>> QualifiedNameAsPrimary(const AkPublic& ak, uint32_t hierarchy) {
  uint8_t handle[4] = {static_cast<uint8_t>(hierarchy >> 24), static_cast<uint8_t>(hierarchy >> 16),
                       static_cast<uint8_t>(hierarchy >> 8), static_cast<uint8_t>(hierarchy)};
  std::span<const uint8_t> parts[] = {handle, ak.name};
  return AlgAndDigest(ak.name_alg, parts);
}

Result<QuoteInfo> ParseQuote(std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(TPMS_ATTEST a, Unmarshal<TPMS_ATTEST>(Tss2_MU_TPMS_ATTEST_Unmarshal, bytes,
                                                         "the quote (TPMS_ATTEST)"));
  QuoteInfo q;
  q.magic = a.magic;
  q.type = a.type;
  q.qualified_signer.assign(a.qualifiedSigner.name,
                            a.qualifiedSigner.name + a.qualifiedSigner.size);
  q.extra_data.assign(a.extraData.buffer, a.extraData.buffer + a.extraData.size);
  q.clock = a.clockInfo.clock;
  q.reset_count = a.clockInfo.resetCount;
  q.restart_count = a.clockInfo.restartCount;
  q.safe = a.clockInfo.safe != 0;
  q.firmware_version = a.firmwareVersion;
  if (a.type == TPM2_ST_ATTEST_QUOTE) {
    const TPML_PCR_SELECTION& sel = a.attested.quote.pcrSelect;
    for (uint32_t i = 0; i < sel.count; ++i) {
      const TPMS_PCR_SELECTION& s = sel.pcrSelections[i];
      PcrSelection bank{s.hash, {}};
      for (uint32_t pcr = 0; pcr < s.sizeofSelect * 8u; ++pcr) {
        if (s.pcrSelect[pcr / 8] & (1u << (pcr % 8))) bank.pcrs.push_back(pcr);
      }
      q.selection.push_back(std::move(bank));
    }
    const TPM2B_DIGEST& d = a.attested.quote.pcrDigest;
    q.pcr_digest.assign(d.buffer, d.buffer + d.size);
  }
  return q;
}

Result<SignatureInfo> ParseSignature(std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(TPMT_SIGNATURE sig, UnmarshalSignature(bytes));
  return InfoOf(sig);
}

Result<SignatureInfo> VerifyQuoteSignature(const AkPublic& ak, std::span<const uint8_t> attest,
                                           std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(TPMT_SIGNATURE sig, UnmarshalSignature(bytes));
  ASSIGN_OR_RETURN(SignatureInfo info, InfoOf(sig));
  auto does_not_verify = [&info] {
    OpenSslError(ErrorKind::kProtocol, "");  // drain the queue
    return Bad("the quote's " + AlgName(info.hash_alg) +
               " signature does not verify with the AK's public key");
  };
  std::vector<uint8_t> der;
  if (ak.type == TPM2_ALG_ECC) {
    if (sig.sigAlg != TPM2_ALG_ECDSA) return Bad("an ECC AK's quote is not signed with ECDSA");
    const TPMS_SIGNATURE_ECC& ecc = sig.signature.ecdsa;
    der = {0x30, 0x00};  // SEQUENCE { r, s }: at most 2 * 35 bytes, so one length byte
    if (!AppendDerInteger(der, {ecc.signatureR.buffer, ecc.signatureR.size}) ||
        !AppendDerInteger(der, {ecc.signatureS.buffer, ecc.signatureS.size})) {
      return does_not_verify();
    }
    der[1] = static_cast<uint8_t>(der.size() - 2);
  } else {
    if (sig.sigAlg != TPM2_ALG_RSASSA) return Bad("an RSA AK's quote is not signed with RSASSA");
    der.assign(sig.signature.rsassa.sig.buffer,
               sig.signature.rsassa.sig.buffer + sig.signature.rsassa.sig.size);
  }
  // What the TPM signed is the digest of `attest` (Part 1 §20.2): hashed here, then verified
  // with the key's prepared context.
  const EVP_MD* md = SignatureMd(info.hash_alg);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EvpPkeyCtxPtr ctx(ak.verifier ? EVP_PKEY_CTX_dup(ak.verifier.get())
                                : EVP_PKEY_CTX_new_from_pkey(nullptr, ak.key.get(), nullptr));
  // RSASSA names the hash inside what is signed, so the context must know it; ECDSA signs the
  // digest alone, and naming it would only fetch the digest's implementation again.
  if (!ctx || (!ak.verifier && EVP_PKEY_verify_init(ctx.get()) != 1) ||
      (ak.type == TPM2_ALG_RSA && EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1) ||
      EVP_Digest(attest.data(), attest.size(), digest, &digest_len, md, nullptr) != 1) {
    return OpenSslError(ErrorKind::kInternal, "setting up the signature check");
  }
  if (EVP_PKEY_verify(ctx.get(), der.data(), der.size(), digest, digest_len) != 1) {
    return does_not_verify();
  }
  return info;
}

Result<std::vector<uint8_t>> ComputePcrDigest(
    uint16_t alg, std::span<const PcrSelection> selection,
    const std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>& pcrs) {
  std::vector<std::span<const uint8_t>> parts;
  for (const PcrSelection& bank : selection) {
    auto values = pcrs.find(bank.alg);
    for (uint32_t pcr : bank.pcrs) {
      if (values == pcrs.end() || values->second.count(pcr) == 0) {
        return Bad("the quote selects " + AlgName(bank.alg) + " PCR " + std::to_string(pcr) +
                   " but the bundle has no value for it");
      }
      const std::vector<uint8_t>& v = values->second.at(pcr);
      if (DigestSizeOf(bank.alg) != v.size()) {
        return Bad(AlgName(bank.alg) + " PCR " + std::to_string(pcr) + " has " +
                   std::to_string(v.size()) + " bytes, not the bank's digest size");
      }
      parts.push_back(v);
    }
  }
  uint16_t algs[] = {alg};
  ASSIGN_OR_RETURN(std::vector<Digest> digest, internal::HashChunks(algs, parts));
  return digest[0].bytes;
}

}  // namespace vmm::attestation
