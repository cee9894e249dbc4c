#include "vtpm/protocol/tpm_command.h"

#include <cstdio>

namespace vmm::vtpm {

size_t TpmDigestSize(uint16_t alg) { return TpmAlgDigestSize(alg); }

std::string TpmAlgName(uint16_t alg) {
  if (std::string_view known = TpmAlgKnownName(alg); !known.empty()) return std::string(known);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%04x", alg);
  return buf;
}

TpmCommandBuilder::TpmCommandBuilder(uint16_t tag, uint32_t code) { U16(tag).U32(0).U32(code); }

TpmCommandBuilder& TpmCommandBuilder::U8(uint8_t v) {
  bytes_.push_back(v);
  return *this;
}

TpmCommandBuilder& TpmCommandBuilder::U16(uint16_t v) {
  return U8(static_cast<uint8_t>(v >> 8)).U8(static_cast<uint8_t>(v));
}

TpmCommandBuilder& TpmCommandBuilder::U32(uint32_t v) {
  return U16(static_cast<uint16_t>(v >> 16)).U16(static_cast<uint16_t>(v));
}

TpmCommandBuilder& TpmCommandBuilder::Bytes(std::span<const uint8_t> b) {
  bytes_.insert(bytes_.end(), b.begin(), b.end());
  return *this;
}

TpmCommandBuilder& TpmCommandBuilder::EmptyPasswordSession() {
  // authorizationSize 9: handle (4), nonce size (2), attributes (1), hmac size (2).
  return U32(9).U32(kTpmRsPw).U16(0).U8(0).U16(0);
}

std::vector<uint8_t> TpmCommandBuilder::Finish() {
  uint32_t size = static_cast<uint32_t>(bytes_.size());
  for (int i = 0; i < 4; ++i) bytes_[2 + i] = static_cast<uint8_t>(size >> (24 - 8 * i));
  return std::move(bytes_);
}

std::optional<uint8_t> TpmReader::U8() {
  if (remaining() < 1) return std::nullopt;
  return bytes_[pos_++];
}

std::optional<uint16_t> TpmReader::U16() {
  if (remaining() < 2) return std::nullopt;
  uint16_t v = static_cast<uint16_t>((bytes_[pos_] << 8) | bytes_[pos_ + 1]);
  pos_ += 2;
  return v;
}

std::optional<uint32_t> TpmReader::U32() {
  if (remaining() < 4) return std::nullopt;
  uint32_t v = (uint32_t{bytes_[pos_]} << 24) | (uint32_t{bytes_[pos_ + 1]} << 16) |
               (uint32_t{bytes_[pos_ + 2]} << 8) | bytes_[pos_ + 3];
  pos_ += 4;
  return v;
}

std::optional<std::span<const uint8_t>> TpmReader::Bytes(size_t n) {
  if (remaining() < n) return std::nullopt;
  std::span<const uint8_t> out = bytes_.subspan(pos_, n);
  pos_ += n;
  return out;
}

Result<std::span<const uint8_t>> TpmResponseParameters(std::span<const uint8_t> response,
                                                       bool with_sessions,
                                                       const std::string& what) {
  TpmReader r(response);
  auto tag = r.U16();
  auto size = r.U32();
  auto rc = r.U32();
  if (!tag || !size || !rc) return Error(ErrorKind::kProtocol, what + ": short response");
  if (*size != response.size()) {
    return Error(ErrorKind::kProtocol, what + ": response size field " + std::to_string(*size) +
                                           " but " + std::to_string(response.size()) + " bytes");
  }
  if (*rc != 0) {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%x", *rc);
    return Error(ErrorKind::kProtocol, what + " failed: TPM response code " + hex);
  }
  if (!with_sessions || *tag != kTpmStSessions) return response.subspan(r.offset());
  auto parameter_size = r.U32();
  if (!parameter_size || *parameter_size > r.remaining()) {
    return Error(ErrorKind::kProtocol, what + ": parameterSize runs past the response");
  }
  return response.subspan(r.offset(), *parameter_size);
}

Result<void> TpmResponseOk(std::span<const uint8_t> response, bool with_sessions,
                           const std::string& what) {
  auto params = TpmResponseParameters(response, with_sessions, what);
  if (!params) return params.error();
  return Ok();
}

void AppendPcrSelection(TpmCommandBuilder& b, std::span<const PcrBank> banks) {
  b.U32(static_cast<uint32_t>(banks.size()));
  for (const PcrBank& bank : banks) {
    b.U16(bank.alg).U8(3);
    for (int i = 0; i < 3; ++i) b.U8(static_cast<uint8_t>(bank.pcrs >> (8 * i)));
  }
}

std::optional<std::vector<PcrBank>> ReadPcrSelection(TpmReader& r) {
  auto count = r.U32();
  if (!count || *count > 16) return std::nullopt;
  std::vector<PcrBank> banks;
  for (uint32_t i = 0; i < *count; ++i) {
    auto alg = r.U16();
    auto size = r.U8();
    if (!alg || !size || *size > 32) return std::nullopt;
    auto select = r.Bytes(*size);
    if (!select) return std::nullopt;
    PcrBank bank{*alg, 0};
    for (size_t byte = 0; byte < select->size() && byte < 3; ++byte) {
      bank.pcrs |= uint32_t{(*select)[byte]} << (8 * byte);
    }
    banks.push_back(bank);
  }
  return banks;
}

}  // namespace vmm::vtpm
