#include "vtpm/process/engine_service.h"

#include <algorithm>

namespace vmm::vtpm {
namespace {

using swtpm::BlobType;

std::optional<BlobKind> KindOf(BlobType type) {
  switch (type) {
    case BlobType::kPermanent:
      return BlobKind::kPermanent;
    case BlobType::kVolatile:
      return BlobKind::kVolatile;
    case BlobType::kSaveState:
      break;
  }
  return std::nullopt;
}

PtmStatus FromError(uint32_t result, const Error& e) {
  return PtmStatus::Failure(result, e.ToString());
}

}  // namespace

EngineService::EngineService(TpmEngine& engine, const Key& key, VmId vm_id)
    : engine_(engine), key_(key), vm_id_(vm_id) {}

bool EngineService::running() const { return engine_.running(); }

void EngineService::MaybeSendShutdown() {
  if (!engine_.running() || last_command_ == 0 || last_command_ == kTpmCcShutdown) return;
  // TPM 2.0 Part 3 §9.4 TPM2_Shutdown(shutdownType): TPM_SU_STATE (1), else TPM_SU_CLEAR (0).
  for (uint8_t su : {uint8_t{1}, uint8_t{0}}) {
    const uint8_t command[12] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x45, 0x00, su};
    auto rsp = engine_.Execute(command);
    if (rsp && TpmResponseCode(*rsp) == kTpmRcSuccess) break;
  }
  last_command_ = kTpmCcShutdown;
}

PtmStatus EngineService::Init(uint32_t flags) {
  MaybeSendShutdown();
  engine_.PowerOff();
  last_command_ = 0;
  if (auto on = engine_.PowerOn(); !on) return FromError(swtpm::kResFail, on.error());
  if (flags & swtpm::kInitFlagDeleteVolatile) {
    if (auto removed = engine_.DeleteVolatile(); !removed)
      return FromError(swtpm::kResFail, removed.error());
  }
  return PtmStatus::Success();
}

void EngineService::Stop() {
  MaybeSendShutdown();
  engine_.PowerOff();
  last_command_ = 0;
}

std::vector<uint8_t> EngineService::Execute(std::span<const uint8_t> command, uint8_t locality) {
  if (!engine_.SetLocality(locality)) return TpmErrorResponse(kTpmRcFailure);
  auto rsp = engine_.Execute(command);
  if (!rsp) return TpmErrorResponse(kTpmRcFailure);
  if (command.size() >= kTpmHeaderSize) last_command_ = LoadBe<uint32_t>(command, 6).value_or(0);
  return std::move(*rsp);
}

uint32_t EngineService::MaxCommandSize() const { return engine_.buffer_size(); }

PtmStatus EngineService::Cancel() {
  engine_.Cancel();
  return PtmStatus::Success();
}

TpmService::Established EngineService::GetEstablished() {
  auto bit = engine_.TpmEstablished();
  if (!bit) return {FromError(swtpm::kResFail, bit.error()), false};
  return {PtmStatus::Success(), *bit};
}

PtmStatus EngineService::ResetEstablished(uint8_t locality) {
  // PC Client PTP: only localities 3 and 4 may reset tpmEstablishment.
  if (locality != 3 && locality != 4) {
    return PtmStatus::Failure(swtpm::kResBadLocality,
                              "locality " + std::to_string(locality) + " may not reset it");
  }
  if (auto r = engine_.ResetTpmEstablished(locality); !r)
    return FromError(swtpm::kResFail, r.error());
  return PtmStatus::Success();
}

PtmStatus EngineService::HashStart() {
  if (auto r = engine_.HashStart(); !r) return FromError(swtpm::kResFail, r.error());
  return PtmStatus::Success();
}

PtmStatus EngineService::HashData(std::span<const uint8_t> data) {
  if (auto r = engine_.HashData(data); !r) return FromError(swtpm::kResFail, r.error());
  return PtmStatus::Success();
}

PtmStatus EngineService::HashEnd() {
  if (auto r = engine_.HashEnd(); !r) return FromError(swtpm::kResFail, r.error());
  return PtmStatus::Success();
}

PtmStatus EngineService::StoreVolatile() {
  if (auto r = engine_.StoreVolatile(); !r) return FromError(swtpm::kResFail, r.error());
  return PtmStatus::Success();
}

TpmService::StateBlob EngineService::GetStateBlob(BlobType type, uint32_t offset) {
  StateBlob out;
  out.flags = swtpm::kStateFlagEncrypted;
  std::optional<BlobKind> kind = KindOf(type);
  if (!kind) return out;  // TPM 2.0: the savestate blob is always empty
  std::optional<std::vector<uint8_t>>& cached = last_sealed_[*kind == BlobKind::kPermanent ? 0 : 1];
  if (offset == 0 || !cached) {
    auto plain = engine_.GetState(*kind);
    if (!plain) {
      out.status = FromError(swtpm::kResFail, plain.error());
      return out;
    }
    auto sealed = Seal(key_, SealParams{vm_id_, *kind, 1}, plain->span());
    if (!sealed) {
      out.status = FromError(swtpm::kResFail, sealed.error());
      return out;
    }
    cached = std::move(*sealed);
  }
  if (offset < cached->size()) out.bytes.assign(cached->begin() + offset, cached->end());
  return out;
}

PtmStatus EngineService::SetStateBlob(BlobType type, uint32_t /*flags*/,
                                      std::span<const uint8_t> blob) {
  std::optional<BlobKind> kind = KindOf(type);
  if (!kind) {
    if (blob.empty()) return PtmStatus::Success();
    return PtmStatus::Failure(swtpm::kResBadParameter, "a TPM 2.0 has no savestate blob");
  }
  // Sealed (never plaintext) whatever the flags claim: the check below is what counts.
  auto unsealed = Unseal(key_, Expected{vm_id_, *kind, 0}, blob);
  if (!unsealed) {
    return PtmStatus::Failure(swtpm::kResDecryptError,
                              "the " + swtpm::BlobTypeName(type) +
                                  " state blob was refused: " + unsealed.error().ToString());
  }
  if (auto r = engine_.SetState(*kind, unsealed->plaintext.span()); !r) {
    return FromError(swtpm::kResBadParameter, r.error());
  }
  last_sealed_[*kind == BlobKind::kPermanent ? 0 : 1].reset();
  return PtmStatus::Success();
}

uint32_t EngineService::ConfigFlags() const {
  // State blobs are always sealed (swtpm's "migration key"); the state files are too.
  return swtpm::kConfigFlagMigrationKey | (engine_.has_store() ? swtpm::kConfigFlagFileKey : 0);
}

TpmService::BufferSize EngineService::SetBufferSize(uint32_t wanted) {
  auto s = engine_.SetBufferSize(wanted);
  if (!s) return {FromError(swtpm::kResBadOrdinal, s.error()), {}};
  return {PtmStatus::Success(), swtpm::BufferSizes{s->size, s->min, s->max}};
}

TpmService::Info EngineService::GetInfo(uint64_t flags) {
  auto text = engine_.Info(flags);
  if (!text) return {FromError(swtpm::kResSize, text.error()), {}};
  return {PtmStatus::Success(), std::move(*text)};
}

}  // namespace vmm::vtpm
