#include "vtpm/provision/ak_provision.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

#include "vtpm/provision/ak_cert.h"
#include "vtpm/provision/credential.h"
#include "vtpm/tcti/esys_context.h"

namespace vmm::vtpm {

namespace {

const std::string kIndexName = "NV index " + Hex32(kAkCertNvIndex) + " (AK certificate)";

// A policy session satisfying the default EK's authPolicy, PolicySecret(TPM_RH_ENDORSEMENT)
// with the endorsement hierarchy's empty auth; flushed when it goes.
class EkPolicySession {
 public:
  explicit EkPolicySession(ESYS_CONTEXT* esys) : esys_(esys) {}
  EkPolicySession(const EkPolicySession&) = delete;
  EkPolicySession& operator=(const EkPolicySession&) = delete;
  ~EkPolicySession() {
    if (session_ != ESYS_TR_NONE) Esys_FlushContext(esys_, session_);
  }
  Result<ESYS_TR> Start() {
    TPMT_SYM_DEF symmetric = {};
    symmetric.algorithm = TPM2_ALG_NULL;
    TSS2_RC rc = Esys_StartAuthSession(esys_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, ESYS_TR_NONE, nullptr, TPM2_SE_POLICY,
                                       &symmetric, TPM2_ALG_SHA256, &session_);
    if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_StartAuthSession(policy)");
    TPM2B_NONCE nonce_tpm = {};
    TPM2B_DIGEST cp_hash = {};
    TPM2B_NONCE policy_ref = {};
    TPM2B_TIMEOUT* timeout = nullptr;
    TPMT_TK_AUTH* ticket = nullptr;
    rc = Esys_PolicySecret(esys_, ESYS_TR_RH_ENDORSEMENT, session_, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, &nonce_tpm, &cp_hash, &policy_ref, 0, &timeout, &ticket);
    Esys_Free(timeout);
    Esys_Free(ticket);
    if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_PolicySecret(TPM_RH_ENDORSEMENT)");
    return session_;
  }

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR session_ = ESYS_TR_NONE;
};

}  // namespace

Result<bool> AkProvisioned(ESYS_CONTEXT* esys) { return IndexDefined(esys, kAkCertNvIndex); }

Result<PrimaryKey> CreateAk(ESYS_CONTEXT* esys) {
  return CreateEndorsementPrimary(esys, AkTemplate(), "AK");
}

Result<void> ProveAkResidency(ESYS_CONTEXT* esys, const PrimaryKey& ak,
                              std::span<const uint8_t> ak_name_for_challenge) {
  ASSIGN_OR_RETURN(PrimaryKey ek,
                   CreateEndorsementPrimary(esys, EkTemplate(EkKind::kRsa2048), "RSA 2048 EK"));
  uint8_t challenge[32];
  if (RAND_bytes(challenge, sizeof challenge) != 1) return OpenSslError("RAND_bytes");
  ASSIGN_OR_RETURN(CredentialBlob blob,
                   MakeCredential(ek.public_area(), ak_name_for_challenge, challenge));
  TPM2B_ID_OBJECT id_object = {};
  TPM2B_ENCRYPTED_SECRET secret = {};
  if (blob.id_object.size() > sizeof id_object.credential ||
      blob.encrypted_secret.size() > sizeof secret.secret) {
    return Error(ErrorKind::kInternal, "credential blob too large for the TSS types");
  }
  id_object.size = uint16_t(blob.id_object.size());
  std::memcpy(id_object.credential, blob.id_object.data(), blob.id_object.size());
  secret.size = uint16_t(blob.encrypted_secret.size());
  std::memcpy(secret.secret, blob.encrypted_secret.data(), blob.encrypted_secret.size());

  EkPolicySession session(esys);
  ASSIGN_OR_RETURN(ESYS_TR policy, session.Start());
  TPM2B_DIGEST* recovered_raw = nullptr;
  TSS2_RC rc = Esys_ActivateCredential(esys, ak.handle(), ek.handle(), ESYS_TR_PASSWORD, policy,
                                       ESYS_TR_NONE, &id_object, &secret, &recovered_raw);
  EsysPtr<TPM2B_DIGEST> recovered(recovered_raw);
  if (rc != TSS2_RC_SUCCESS) {
    return TssError(rc,
                    "TPM2_ActivateCredential (the vTPM did not recover the CA's credential "
                    "for the AK)");
  }
  if (recovered->size != sizeof challenge ||
      CRYPTO_memcmp(recovered->buffer, challenge, sizeof challenge) != 0) {
    return Error(ErrorKind::kProtocol,
                 "TPM2_ActivateCredential returned another credential than the CA made");
  }
  return Ok();
}

Result<ProvisionedAk> ReadAkPublic(ESYS_CONTEXT* esys) {
  ASSIGN_OR_RETURN(PrimaryKey ak, CreateAk(esys));
  ProvisionedAk out;
  ASSIGN_OR_RETURN(out.public_area, MarshalPublicArea(ak.public_area()));
  ASSIGN_OR_RETURN(out.name, ObjectName(ak.public_area()));
  ASSIGN_OR_RETURN(EvpPkeyPtr key, PublicAreaToKey(ak.public_area()));
  ASSIGN_OR_RETURN(out.public_pem, PublicKeyToPem(key.get()));
  return out;
}

Result<ProvisionedAk> ProvisionAk(ESYS_CONTEXT* esys, const HostCa& ca,
                                  const ProvisionOptions& options) {
  ASSIGN_OR_RETURN(bool exists, AkProvisioned(esys));
  if (exists && !options.force) {
    return InvalidArgument("vTPM is already provisioned: " + kIndexName +
                           " exists; use force to replace its AK certificate");
  }
  ASSIGN_OR_RETURN(TpmIdentity identity, ReadTpmIdentity(esys));
  ASSIGN_OR_RETURN(uint16_t chunk, NvChunkSize(esys));
  ASSIGN_OR_RETURN(uint32_t index_max, GetProperty(esys, TPM2_PT_NV_INDEX_MAX));

  ASSIGN_OR_RETURN(PrimaryKey ak, CreateAk(esys));
  ProvisionedAk out;
  ASSIGN_OR_RETURN(out.public_area, MarshalPublicArea(ak.public_area()));
  ASSIGN_OR_RETURN(out.name, ObjectName(ak.public_area()));
  // ESYS checked the TPM's Name against the public area it returned; ours must agree.
  TPM2B_NAME* tpm_name_raw = nullptr;
  TSS2_RC rc = Esys_TR_GetName(esys, ak.handle(), &tpm_name_raw);
  EsysPtr<TPM2B_NAME> tpm_name(tpm_name_raw);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "Esys_TR_GetName(AK)");
  if (std::vector<uint8_t>(tpm_name->name, tpm_name->name + tpm_name->size) != out.name) {
    return Error(ErrorKind::kProtocol, "the TPM's Name of the AK is not its public area's");
  }
  RETURN_IF_ERROR(ProveAkResidency(esys, ak, out.name));

  ASSIGN_OR_RETURN(EvpPkeyPtr key, PublicAreaToKey(ak.public_area()));
  ASSIGN_OR_RETURN(out.public_pem, PublicKeyToPem(key.get()));
  ASSIGN_OR_RETURN(out.cert_der, IssueAkCertificate(ca, key.get(), identity, options.vm_id));
  if (out.cert_der.size() > index_max) {
    return Error(ErrorKind::kUnsupported,
                 kIndexName + ": the certificate (" + std::to_string(out.cert_der.size()) +
                     " bytes) exceeds TPM_PT_NV_INDEX_MAX (" + std::to_string(index_max) + ")");
  }
  if (exists) RETURN_IF_ERROR(UndefineIndex(esys, kAkCertNvIndex));
  auto stored = StoreCertificate(esys, kAkCertNvIndex, kEkCertNvAttributes, out.cert_der, chunk);
  if (!stored) return stored.error().Wrap("storing the " + kIndexName);
  return out;
}

Result<std::vector<uint8_t>> ReadAkCertificate(ESYS_CONTEXT* esys) {
  return ReadCertificate(esys, kAkCertNvIndex, kIndexName);
}

}  // namespace vmm::vtpm
