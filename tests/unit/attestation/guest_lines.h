// The guest's attestation lines as tests/guest/checks/attest.c prints them, for the tests and
// the fuzzer of attestation/guest_evidence.h: a piece in hex, 192 bytes a line, and the PCR
// values one a line.
//
//   std::string console = GuestPieceLines("nonce", nonce) + GuestPieceLines("quote", attest);
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/hex.h"
#include "base/tpm_alg.h"

namespace vmm::attestation {

// "attest: <name> <i>/<n> <hex>\n" for each of the n lines.
inline std::string GuestPieceLines(const std::string& name, const std::vector<uint8_t>& b) {
  constexpr size_t kPer = 192;
  const size_t parts = (b.size() + kPer - 1) / kPer;
  std::string out;
  for (size_t i = 0; i < parts; ++i) {
    const size_t len = std::min(kPer, b.size() - i * kPer);
    out += "attest: " + name + " " + std::to_string(i + 1) + "/" + std::to_string(parts) + " " +
           HexBytes(std::span<const uint8_t>(b).subspan(i * kPer, len)) + "\n";
  }
  return out;
}

// "attest: pcr <bank> <index> <hex>\n" for each quoted PCR value.
inline std::string GuestPcrLines(
    const std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>& pcrs) {
  std::string out;
  for (const auto& [alg, values] : pcrs) {
    for (const auto& [pcr, value] : values) {
      out += "attest: pcr " + std::string(TpmAlgKnownName(alg)) + " " + std::to_string(pcr) + " " +
             HexBytes(value) + "\n";
    }
  }
  return out;
}

}  // namespace vmm::attestation
