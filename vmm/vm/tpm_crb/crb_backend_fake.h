// FakeCrbBackend: a CrbBackend for tests and fuzzers that records what the device sends and
// answers either at once (from inside Submit) or when the test says so.
//
//   FakeCrbBackend backend;  auto crb = CrbDevice::Create(gpa, page, backend).value();
//   backend.device = crb.get();  backend.answer_in_submit = true;  // or backend.Answer()
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/vm/tpm_crb/crb_device.h"

namespace vtpm {

class FakeCrbBackend : public CrbBackend {
 public:
  void Submit(std::span<const uint8_t> command) override {
    commands.emplace_back(command.begin(), command.end());
    if (answer_in_submit) Answer();
  }
  void Cancel() override { ++cancels; }

  // Completes the outstanding command with `response` (by default an echo of the last
  // command's header with TPM_RC_SUCCESS); returns what Complete() returned.
  bool Answer() {
    if (device == nullptr) return false;
    if (!response.empty()) return device->Complete(response);
    std::vector<uint8_t> ok = {0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0};
    return device->Complete(ok);
  }

  CrbDevice* device = nullptr;
  bool answer_in_submit = false;
  std::vector<uint8_t> response;  // empty: a 10-byte success response
  std::vector<std::vector<uint8_t>> commands;
  int cancels = 0;
};

}  // namespace vtpm
