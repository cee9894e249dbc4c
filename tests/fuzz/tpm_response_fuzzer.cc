// The manager reads the vTPM process's answers (a peer it does not trust) with
// vtpm/protocol/tpm_command.h: any bytes, as a response with or without sessions, and the
// parameters as a PCR selection. Nothing may read out of bounds; what is accepted keeps its
// invariants.
#include <cstddef>
#include <cstdint>
#include <span>

#include "tests/fuzz/fuzz_check.h"
#include "vtpm/protocol/tpm_command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  for (bool sessions : {false, true}) {
    auto params = vmm::vtpm::TpmResponseParameters(bytes, sessions, "fuzz");
    if (!params) continue;
    CHECK(params->data() >= data && params->data() + params->size() <= data + size);
    vmm::vtpm::TpmReader r(*params);
    auto banks = vmm::vtpm::ReadPcrSelection(r);
    if (banks) {
      CHECK(banks->size() <= 16);
      for (const auto& b : *banks) CHECK(b.pcrs <= 0xFFFFFFu);
    }
    CHECK(r.offset() <= params->size());
  }
  return 0;
}
