// The management API's attest body (vmm/manager/api_server.h), what any client on the API
// socket sends the manager: what parses must be a valid request, print and parse back the same.
#include <cstdint>
#include <string_view>

#include "vmm/manager/api_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // The PCR list alone, as `vmm attest --pcrs` reads it.
  if (auto sel = vmm::ParsePcrSelection(text); sel) {
    auto again = vmm::ParsePcrSelection(vmm::PcrSelectionToString(*sel));
    if (!again || vmm::PcrSelectionToString(*again) != vmm::PcrSelectionToString(*sel)) {
      __builtin_trap();
    }
  }
  auto request = vmm::ParseAttestRequest(text);
  if (!request) return 0;
  if (!vmm::CheckQuoteRequest(*request)) __builtin_trap();  // parsed means valid
  auto again = vmm::ParseAttestRequest(vmm::AttestRequestToJson(*request));
  if (!again || again->nonce != request->nonce ||
      vmm::PcrSelectionToString(again->pcrs) != vmm::PcrSelectionToString(request->pcrs)) {
    __builtin_trap();
  }
  return 0;
}
