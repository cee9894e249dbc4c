// The management API's request handling (vmm/manager/api_server.h), what any client on the API
// socket sends the manager: the attest body (what parses must be a valid request, print and
// parse back the same), the lifecycle bodies, and HandleApiCall routing, authorising and
// parsing a whole request ("METHOD PATH\nBODY", the first byte picking the caller's role)
// against handlers that check what reaches them.
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
  for (vmm::ApiAction a :
       {vmm::ApiAction::kPause, vmm::ApiAction::kResume, vmm::ApiAction::kShutdown}) {
    auto lr = vmm::ParseLifecycleRequest(a, text);
    if (lr && (lr->action != a || lr->deadline_sec < 1 ||
               lr->deadline_sec > vmm::kMaxShutdownDeadlineSec)) {
      __builtin_trap();
    }
  }
  if (!text.empty()) {
    const auto role = static_cast<vmm::ApiRole>(static_cast<uint8_t>(text[0]) % 5);
    std::string_view rest = text.substr(1);
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    const size_t sp = line.find(' ');
    vmm::ApiCall call;
    call.method = std::string(line.substr(0, sp));
    call.path = sp == std::string_view::npos ? "" : std::string(line.substr(sp + 1));
    call.body = nl == std::string_view::npos ? "" : std::string(rest.substr(nl + 1));
    vmm::ApiHandlers h;
    h.authorize = [role](const vmm::ApiPeer&) { return role; };
    auto must_be_allowed = [&](vmm::ApiAction action) {
      if (!vmm::RoleMayCall(role, action)) __builtin_trap();  // authorisation was bypassed
    };
    h.info = [&] {
      must_be_allowed(vmm::ApiAction::kInfo);
      return std::string("{}");
    };
    h.lifecycle = [&](const vmm::LifecycleRequest& r) {
      must_be_allowed(r.action);
      return vmm::ApiResponse{200, "{}"};
    };
    h.attest = [&](const vmm::QuoteRequest& r) -> vmm::Result<std::string> {
      must_be_allowed(vmm::ApiAction::kAttest);
      if (!vmm::CheckQuoteRequest(r)) __builtin_trap();
      return std::string("{}");
    };
    vmm::ApiResponse response = vmm::HandleApiCall(call, h);
    if (response.status < 200 || response.status > 599 || response.body.empty()) __builtin_trap();
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
