// FakeEntropySource: predictable "entropy" for tests: a running byte counter starting at
// `next`, and a switch to make it fail.
//
//   FakeEntropySource entropy;
//   RngDevice rng(entropy);
#pragma once

#include <cstdint>
#include <span>

#include "vmm/device/rng/rng.h"

namespace vmm::virtio {

class FakeEntropySource final : public EntropySource {
 public:
  Result<void> Fill(std::span<uint8_t> out) override {
    ++calls;
    if (fail) return Error(ErrorKind::kSystem, "fake entropy failure", 5);
    for (uint8_t& b : out) b = next++;
    bytes += out.size();
    return Ok();
  }

  uint8_t next = 1;
  uint64_t calls = 0;
  uint64_t bytes = 0;
  bool fail = false;
};

}  // namespace vmm::virtio
