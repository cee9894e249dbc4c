// A hostile guest against the TPM engine (vtpm/engine/tpm_engine.h): arbitrary command bytes,
// as the CRB device would pass them on, to one volatile-only engine that lives for the whole
// run (libtpms is process-global). Half the inputs get their header's commandSize fixed up
// so they reach TPMLIB_Process rather than the engine's own size check.
// Checked: Execute never fails and always returns a well-formed response header whose
// commandSize matches its length; refused sizes are answered with TPM_RC_COMMAND_SIZE.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "base/bytes.h"
#include "tests/fuzz/fuzz_check.h"
#include "vtpm/engine/tpm_engine.h"

namespace {

using namespace vmm::vtpm;

TpmEngine& Engine() {
  static TpmEngine* engine = [] {
    auto created = TpmEngine::Create(nullptr);
    CHECK(created.has_value());
    CHECK((*created)->Startup().has_value());
    return created->release();  // lives until exit: libtpms state is global anyway
  }();
  return *engine;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TpmEngine& tpm = Engine();
  std::vector<uint8_t> command(data, data + size);
  if (size >= 11 && (data[0] & 1) && size - 1 <= kMaxTpmCommandSize) {
    command.erase(command.begin());
    uint32_t n = static_cast<uint32_t>(command.size());
    command[2] = uint8_t(n >> 24), command[3] = uint8_t(n >> 16);
    command[4] = uint8_t(n >> 8), command[5] = uint8_t(n);
  }
  auto response = tpm.Execute(command);
  CHECK(response.has_value());
  CHECK(response->size() >= kTpmHeaderSize && response->size() <= kMaxTpmCommandSize);
  CHECK(vmm::LoadBe<uint32_t>(*response, 2) == response->size());
  bool size_ok = command.size() >= kTpmHeaderSize && command.size() <= kMaxTpmCommandSize &&
                 vmm::LoadBe<uint32_t>(command, 2) == command.size();
  if (!size_ok) CHECK(*response == TpmErrorResponse(kTpmRcCommandSize));
  // A guest may Shutdown or otherwise wedge its TPM; a reboot must always recover it.
  if (size > 0 && data[size - 1] == 0xA5 && size % 7 == 0) {
    CHECK(tpm.Reset().has_value());
    CHECK(tpm.Startup().has_value());
  }
  return 0;
}
