// Hand-built TPM 2.0 commands for the engine tests (TPM 2.0 Library Part 3 layouts).
//
//   std::vector<uint8_t> cmd = tpmtest::GetRandom(16);
//   uint32_t rc = tpmtest::Rc(engine->Execute(cmd).value());
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/bytes.h"

namespace vmm::vtpm::tpmtest {

inline constexpr uint16_t kStNoSessions = 0x8001;
inline constexpr uint16_t kStSessions = 0x8002;
inline constexpr uint16_t kAlgSha256 = 0x000B;       // Part 2 §6.3
inline constexpr uint32_t kRhOwner = 0x40000001;     // Part 2 §7.4
inline constexpr uint32_t kRsPw = 0x40000009;        // password session
inline constexpr uint32_t kCcNvDefineSpace = 0x12A;  // Part 2 §6.5.2
inline constexpr uint32_t kCcNvReadPublic = 0x169;
inline constexpr uint32_t kCcGetRandom = 0x17B;
inline constexpr uint32_t kCcPcrRead = 0x17E;
inline constexpr uint32_t kCcPcrExtend = 0x182;
inline constexpr uint32_t kTestNvIndex = 0x01500016;  // owner range, Part 2 §7.2 / TCG registry

// Big-endian marshalling (Part 1 §18: all integers on the wire are big-endian).
class Writer {
 public:
  Writer& U8(uint8_t v) {
    b_.push_back(v);
    return *this;
  }
  Writer& U16(uint16_t v) {
    AppendBe<uint16_t>(b_, v);
    return *this;
  }
  Writer& U32(uint32_t v) {
    AppendBe<uint32_t>(b_, v);
    return *this;
  }
  Writer& Bytes(std::span<const uint8_t> s) {
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  Writer& Tpm2b(std::span<const uint8_t> s) { return U16(uint16_t(s.size())).Bytes(s); }
  std::vector<uint8_t>& bytes() { return b_; }

 private:
  std::vector<uint8_t> b_;
};

// Reads inside `b` (a read past its end is a test bug: std::bad_optional_access).
inline uint32_t Be32(std::span<const uint8_t> b, size_t at) {
  return LoadBe<uint32_t>(b, at).value();
}
inline uint16_t Be16(std::span<const uint8_t> b, size_t at) {
  return LoadBe<uint16_t>(b, at).value();
}

// Part 1 §18.2: tag, commandSize (patched in), commandCode, then handles, auth, parameters.
inline std::vector<uint8_t> Command(uint16_t tag, uint32_t cc, std::span<const uint8_t> body) {
  Writer w;
  w.U16(tag).U32(uint32_t(10 + body.size())).U32(cc).Bytes(body);
  return std::move(w.bytes());
}

inline uint32_t Rc(std::span<const uint8_t> response) {
  return response.size() < 10 ? 0xffffffff : Be32(response, 6);
}

// Part 1 §18.7 / Part 2 §10.13.2: authorizationSize, then one TPMS_AUTH_COMMAND for the
// password session: TPM_RS_PW, empty nonce, attributes continueSession, empty password.
inline void EmptyPasswordAuth(Writer& w) { w.U32(9).U32(kRsPw).U16(0).U8(0x01).U16(0); }

// Part 3 §16.1 TPM2_GetRandom(bytesRequested).
inline std::vector<uint8_t> GetRandom(uint16_t n) {
  Writer w;
  w.U16(n);
  return Command(kStNoSessions, kCcGetRandom, w.bytes());
}

// Part 3 §22.4 TPM2_PCR_Read: TPML_PCR_SELECTION with one sha256 bank, 3-byte bitmap.
inline std::vector<uint8_t> PcrRead(uint32_t pcr) {
  Writer w;
  std::array<uint8_t, 3> select{};
  select[pcr / 8] = uint8_t(1u << (pcr % 8));
  w.U32(1).U16(kAlgSha256).U8(3).Bytes(select);
  return Command(kStNoSessions, kCcPcrRead, w.bytes());
}

// The one digest in a PCR_Read response: header 10, pcrUpdateCounter 4, the selection
// echoed (4 + 2 + 1 + 3), TPML_DIGEST count 4, TPM2B size 2, then the digest.
inline std::vector<uint8_t> PcrReadDigest(std::span<const uint8_t> rsp) {
  constexpr size_t kCount = 10 + 4 + 10, kDigest = kCount + 4 + 2;
  if (rsp.size() < kDigest || Be32(rsp, kCount) != 1) return {};
  size_t n = Be16(rsp, kCount + 4);
  if (rsp.size() < kDigest + n) return {};
  return {rsp.begin() + kDigest, rsp.begin() + kDigest + n};
}

// Part 3 §22.2 TPM2_PCR_Extend(pcrHandle) @auth, TPML_DIGEST_VALUES with one sha256.
inline std::vector<uint8_t> PcrExtend(uint32_t pcr, std::span<const uint8_t, 32> digest) {
  Writer w;
  w.U32(pcr);
  EmptyPasswordAuth(w);
  w.U32(1).U16(kAlgSha256).Bytes(digest);
  return Command(kStSessions, kCcPcrExtend, w.bytes());
}

// Part 3 §31.3 TPM2_NV_DefineSpace(TPM_RH_OWNER) @auth: empty auth, TPM2B_NV_PUBLIC
// (Part 2 §13.5): index, sha256, attributes OWNERWRITE|AUTHWRITE|OWNERREAD|AUTHREAD
// (Part 2 §13.4, TPM_NT_ORDINARY), empty policy, dataSize.
inline std::vector<uint8_t> NvDefineSpace(uint32_t index, uint16_t size) {
  Writer pub;
  pub.U32(index).U16(kAlgSha256).U32(0x00060006).U16(0).U16(size);
  Writer w;
  w.U32(kRhOwner);
  EmptyPasswordAuth(w);
  w.U16(0).Tpm2b(pub.bytes());
  return Command(kStSessions, kCcNvDefineSpace, w.bytes());
}

// Part 3 §31.6 TPM2_NV_ReadPublic(nvIndex).
inline std::vector<uint8_t> NvReadPublic(uint32_t index) {
  Writer w;
  w.U32(index);
  return Command(kStNoSessions, kCcNvReadPublic, w.bytes());
}

inline std::vector<uint8_t> Sha256(std::span<const uint8_t> data) {
  std::vector<uint8_t> out(32);
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha256(), nullptr);
  return out;
}

}  // namespace vmm::vtpm::tpmtest
