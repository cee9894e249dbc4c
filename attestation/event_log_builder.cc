// EventLogBuilder: a crypto-agile TCG event log in memory.
#include <algorithm>
#include <cstring>

#include "attestation/event_log.h"
#include "attestation/internal.h"

namespace vmm::attestation {

namespace {

void Put8(std::vector<uint8_t>& out, uint8_t v) { out.push_back(v); }
void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
void Put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void PutBytes(std::vector<uint8_t>& out, std::span<const uint8_t> b) {
  out.insert(out.end(), b.begin(), b.end());
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

EventLogBuilder::EventLogBuilder() : EventLogBuilder({kAlgSha256, kAlgSha384}, {}, 16u << 20) {}

EventLogBuilder::EventLogBuilder(std::vector<uint16_t> banks, std::span<const uint8_t> vendor_info,
                                 size_t max_size)
    : banks_(std::move(banks)), max_size_(max_size) {
  // TCG_EfiSpecIDEvent.
  std::vector<uint8_t> spec;
  PutBytes(spec, AsBytes(kSpecIdSignature03));
  Put32(spec, 0);  // platformClass: client
  Put8(spec, 0);   // specVersionMinor
  Put8(spec, 2);   // specVersionMajor
  Put8(spec, 2);   // specErrata
  Put8(spec, 2);   // uintnSize: UINT64
  Put32(spec, static_cast<uint32_t>(banks_.size()));
  for (uint16_t alg : banks_) {
    Put16(spec, alg);
    Put16(spec, static_cast<uint16_t>(DigestSizeOf(alg).value_or(0)));
  }
  Put8(spec, static_cast<uint8_t>(vendor_info.size()));
  PutBytes(spec, vendor_info);
  // TCG_PCR_EVENT (SHA-1 format) carrying it.
  Put32(bytes_, 0);
  Put32(bytes_, kEvNoAction);
  bytes_.insert(bytes_.end(), 20, 0);
  Put32(bytes_, static_cast<uint32_t>(spec.size()));
  PutBytes(bytes_, spec);
}

Result<EventLogBuilder> EventLogBuilder::Create(std::vector<uint16_t> banks,
                                                std::span<const uint8_t> vendor_info,
                                                size_t max_size) {
  if (banks.empty()) return InvalidArgument("event log builder: no PCR bank given");
  for (size_t i = 0; i < banks.size(); ++i) {
    if (!DigestSizeOf(banks[i]) || !AlgSupported(banks[i])) {
      return Error(ErrorKind::kUnsupported,
                   "event log builder: cannot compute bank " + AlgName(banks[i]));
    }
    if (std::find(banks.begin(), banks.begin() + i, banks[i]) != banks.begin() + i) {
      return InvalidArgument("event log builder: bank " + AlgName(banks[i]) + " given twice");
    }
  }
  if (vendor_info.size() > 255) {
    return InvalidArgument("event log builder: vendor info of " +
                           std::to_string(vendor_info.size()) + " bytes (at most 255)");
  }
  EventLogBuilder b(std::move(banks), vendor_info, max_size);
  if (b.bytes_.size() > max_size) {
    return InvalidArgument("event log builder: the header alone (" +
                           std::to_string(b.bytes_.size()) + " bytes) exceeds the maximum of " +
                           std::to_string(max_size));
  }
  return b;
}

Result<void> EventLogBuilder::Append(uint32_t pcr, uint32_t type,
                                     std::span<const uint8_t> event_data,
                                     std::span<const Digest> digests) {
  if (pcr >= kNumPcrs) {
    return InvalidArgument("event log builder: PCR " + std::to_string(pcr) + " out of range");
  }
  if (event_data.size() > UINT32_MAX) return InvalidArgument("event log builder: data too large");
  size_t record = 12 + 4 + event_data.size();
  for (const Digest& d : digests) record += 2 + d.bytes.size();
  if (record > max_size_ - bytes_.size()) {
    return Error(ErrorKind::kInvalidArgument,
                 "event log builder: event of " + std::to_string(record) +
                     " bytes does not fit (log " + std::to_string(bytes_.size()) + " of " +
                     std::to_string(max_size_) + " bytes)");
  }
  bytes_.reserve(bytes_.size() + record);
  Put32(bytes_, pcr);
  Put32(bytes_, type);
  Put32(bytes_, static_cast<uint32_t>(digests.size()));
  for (const Digest& d : digests) {
    Put16(bytes_, d.alg);
    PutBytes(bytes_, d.bytes);
  }
  Put32(bytes_, static_cast<uint32_t>(event_data.size()));
  PutBytes(bytes_, event_data);
  ++events_;
  if (pcr == 0 && type != kEvNoAction) pcr0_extended_ = true;
  return Ok();
}

Result<void> EventLogBuilder::Measure(uint32_t pcr, uint32_t type,
                                      std::span<const uint8_t> event_data,
                                      std::span<const uint8_t> to_hash) {
  ASSIGN_OR_RETURN(std::vector<Digest> digests, HashAll(banks_, to_hash));
  return Append(pcr, type, event_data, digests);
}

Result<void> EventLogBuilder::Record(uint32_t pcr, uint32_t type,
                                     std::span<const uint8_t> event_data,
                                     std::span<const Digest> digests) {
  if (digests.size() != banks_.size()) {
    return InvalidArgument("event log builder: " + std::to_string(digests.size()) +
                           " digests for " + std::to_string(banks_.size()) + " banks");
  }
  std::vector<Digest> ordered;
  ordered.reserve(banks_.size());
  for (uint16_t alg : banks_) {
    auto it = std::find_if(digests.begin(), digests.end(),
                           [alg](const Digest& d) { return d.alg == alg; });
    if (it == digests.end()) {
      return InvalidArgument("event log builder: no " + AlgName(alg) + " digest");
    }
    if (it->bytes.size() != DigestSizeOf(alg)) {
      return InvalidArgument("event log builder: " + AlgName(alg) + " digest of " +
                             std::to_string(it->bytes.size()) + " bytes");
    }
    ordered.push_back(*it);
  }
  return Append(pcr, type, event_data, ordered);
}

Result<void> EventLogBuilder::AddStartupLocality(uint8_t locality) {
  if (pcr0_extended_) {
    return InvalidArgument("event log builder: StartupLocality after PCR 0 was extended");
  }
  if (locality != 0 && locality != 3 && locality != 4) {
    return InvalidArgument("event log builder: startup locality " + std::to_string(locality) +
                           " (0, 3 or 4)");
  }
  std::vector<uint8_t> data(kStartupLocalitySignature.size() + 1, 0);
  std::memcpy(data.data(), kStartupLocalitySignature.data(), kStartupLocalitySignature.size());
  data.back() = locality;
  std::vector<Digest> zeros;
  for (uint16_t alg : banks_) zeros.push_back({alg, std::vector<uint8_t>(*DigestSizeOf(alg), 0)});
  return Append(0, kEvNoAction, data, zeros);
}

Result<void> EventLogBuilder::AddSCrtmVersion(std::span<const uint8_t> version) {
  return Measure(0, kEvSCrtmVersion, version, version);
}

Result<void> EventLogBuilder::AddPlatformConfigFlags(std::span<const uint8_t> flags, uint32_t pcr) {
  return Measure(pcr, kEvPlatformConfigFlags, flags, flags);
}

Result<void> EventLogBuilder::AddIpl(uint32_t pcr, std::string_view text) {
  return Measure(pcr, kEvIpl, AsBytes(text), AsBytes(text));
}

Result<void> EventLogBuilder::AddSeparator(uint32_t pcr) {
  static constexpr uint8_t kZero[4] = {0, 0, 0, 0};
  return Measure(pcr, kEvSeparator, kZero, kZero);
}

}  // namespace vmm::attestation
