#include "vtpm/provision/ek_template.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include <cstring>
#include <vector>

namespace vmm::vtpm {

namespace {

Result<EvpPkeyPtr> KeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  EvpPkeyPtr key = PublicKeyFromParams(type, bld);
  if (!key) return OpenSslError(std::string("building an ") + type + " public key from the TPM's");
  return key;
}

}  // namespace

uint32_t EkCertNvIndex(EkKind kind) {
  return kind == EkKind::kRsa2048 ? kEkCertNvIndexRsa2048 : kEkCertNvIndexEccP256;
}

const char* EkKindName(EkKind kind) {
  return kind == EkKind::kRsa2048 ? "RSA 2048" : "ECC NIST P-256";
}

TPM2B_PUBLIC EkTemplate(EkKind kind) {
  TPM2B_PUBLIC in = {};
  TPMT_PUBLIC& p = in.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  p.authPolicy.size = sizeof kEkAuthPolicySha256;
  std::memcpy(p.authPolicy.buffer, kEkAuthPolicySha256, sizeof kEkAuthPolicySha256);
  TPMT_SYM_DEF_OBJECT sym = {};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  if (kind == EkKind::kRsa2048) {
    p.type = TPM2_ALG_RSA;
    p.parameters.rsaDetail.symmetric = sym;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
    p.unique.rsa.size = 256;  // zeros
  } else {
    p.type = TPM2_ALG_ECC;
    p.parameters.eccDetail.symmetric = sym;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 32;  // zeros
    p.unique.ecc.y.size = 32;
  }
  return in;
}

Result<EvpPkeyPtr> PublicAreaToKey(const TPMT_PUBLIC& pub) {
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld) return OpenSslError("OSSL_PARAM_BLD_new");
  if (pub.type == TPM2_ALG_RSA) {
    const TPM2B_PUBLIC_KEY_RSA& n = pub.unique.rsa;
    if (n.size == 0 || n.size > sizeof n.buffer) {
      return Error(ErrorKind::kProtocol, "TPM RSA public key has a bad modulus size");
    }
    uint32_t e = pub.parameters.rsaDetail.exponent == 0 ? 65537 : pub.parameters.rsaDetail.exponent;
    BnPtr bn_n(BN_bin2bn(n.buffer, n.size, nullptr));
    BnPtr bn_e(BN_new());
    if (!bn_n || !bn_e || BN_set_word(bn_e.get(), e) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
      return OpenSslError("building RSA key parameters");
    }
    return KeyFromParams("RSA", bld.get());
  }
  if (pub.type == TPM2_ALG_ECC) {
    if (pub.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256) {
      return Error(ErrorKind::kUnsupported, "TPM ECC key is not on NIST P-256");
    }
    const TPM2B_ECC_PARAMETER& x = pub.unique.ecc.x;
    const TPM2B_ECC_PARAMETER& y = pub.unique.ecc.y;
    if (x.size == 0 || x.size > 32 || y.size == 0 || y.size > 32) {
      return Error(ErrorKind::kProtocol, "TPM ECC public point has a bad coordinate size");
    }
    // SEC 1 §2.3.3 uncompressed point: 04 || X || Y, each left-padded to 32 bytes.
    std::vector<uint8_t> point(65, 0);
    point[0] = 0x04;
    std::memcpy(&point[1 + 32 - x.size], x.buffer, x.size);
    std::memcpy(&point[33 + 32 - y.size], y.buffer, y.size);
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
      return OpenSslError("building EC key parameters");
    }
    return KeyFromParams("EC", bld.get());
  }
  return Error(ErrorKind::kUnsupported, "TPM public key is neither RSA nor ECC");
}

}  // namespace vmm::vtpm
