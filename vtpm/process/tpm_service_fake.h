// FakeTpmService: a TpmService without libtpms, for server tests and fuzzers.
//
//   FakeTpmService tpm;
//   SwtpmServer server(tpm, log);
//   ... tpm.executed_localities.back() == 0
//
// Execute answers every command with a success response whose one parameter byte is the
// locality it ran at (tag 0x8001, size 11, TPM_RC_SUCCESS, locality), and records it.
// State blobs are the bytes given to SetStateBlob, "sealed" by prefixing a magic; a blob
// without it is refused like a tampered one.
#pragma once

#include <algorithm>
#include <map>
#include <vector>

#include "vtpm/process/tpm_service.h"

namespace vmm::vtpm {

class FakeTpmService : public TpmService {
 public:
  static constexpr uint8_t kSealMagic = 0xA5;

  bool running() const override { return is_running; }
  PtmStatus Init(uint32_t flags) override {
    init_flags.push_back(flags);
    is_running = true;
    return PtmStatus::Success();
  }
  void Stop() override {
    ++stops;
    is_running = false;
  }
  std::vector<uint8_t> Execute(std::span<const uint8_t> command, uint8_t locality) override {
    executed.emplace_back(command.begin(), command.end());
    executed_localities.push_back(locality);
    return {0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0, locality};
  }
  uint32_t MaxCommandSize() const override { return buffer_size; }
  PtmStatus Cancel() override {
    ++cancels;
    return PtmStatus::Success();
  }
  Established GetEstablished() override { return {PtmStatus::Success(), established}; }
  PtmStatus ResetEstablished(uint8_t locality) override {
    if (locality < 3) return PtmStatus::Failure(swtpm::kResBadLocality, "needs locality 3 or 4");
    established = false;
    return PtmStatus::Success();
  }
  PtmStatus HashStart() override {
    hashed.clear();
    return PtmStatus::Success();
  }
  PtmStatus HashData(std::span<const uint8_t> data) override {
    hashed.insert(hashed.end(), data.begin(), data.end());
    return PtmStatus::Success();
  }
  PtmStatus HashEnd() override { return PtmStatus::Success(); }
  PtmStatus StoreVolatile() override { return PtmStatus::Success(); }
  StateBlob GetStateBlob(swtpm::BlobType type, uint32_t offset) override {
    StateBlob b;
    b.flags = swtpm::kStateFlagEncrypted;
    std::vector<uint8_t> sealed{kSealMagic};
    auto& plain = blobs[type];
    sealed.insert(sealed.end(), plain.begin(), plain.end());
    if (offset < sealed.size()) b.bytes.assign(sealed.begin() + offset, sealed.end());
    return b;
  }
  PtmStatus SetStateBlob(swtpm::BlobType type, uint32_t, std::span<const uint8_t> blob) override {
    if (blob.empty() || blob[0] != kSealMagic)
      return PtmStatus::Failure(swtpm::kResDecryptError, "not sealed by us");
    blobs[type].assign(blob.begin() + 1, blob.end());
    return PtmStatus::Success();
  }
  uint32_t ConfigFlags() const override { return swtpm::kConfigFlagMigrationKey; }
  BufferSize SetBufferSize(uint32_t wanted) override {
    if (wanted != 0) buffer_size = std::clamp<uint32_t>(wanted, 2808, 4096);
    return {PtmStatus::Success(), {buffer_size, 2808, 4096}};
  }
  Info GetInfo(uint64_t) override { return {PtmStatus::Success(), "{\"fake\":true}"}; }

  bool is_running = true;
  bool established = true;
  uint32_t buffer_size = 4096;
  int stops = 0;
  int cancels = 0;
  std::vector<uint32_t> init_flags;
  std::vector<std::vector<uint8_t>> executed;
  std::vector<uint8_t> executed_localities;
  std::vector<uint8_t> hashed;
  std::map<swtpm::BlobType, std::vector<uint8_t>> blobs;
};

}  // namespace vmm::vtpm
