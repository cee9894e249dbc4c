// The manager's management API (ARCHITECTURE.md §8): HTTP/1.1 with JSON bodies over a unix
// stream socket, as Firecracker and Cloud Hypervisor serve theirs (`vmm run --api-socket PATH`,
// `curl --unix-socket PATH`). Served by cpp-httplib on one worker thread, started after every
// child process exists (spawning needs a single-threaded manager) and stopped before the vTPM
// process is.
//
// Endpoints (this version):
//   GET /api/v1/vmm.ping    -> 200 {"version": "vmm <version>"}
//   PUT /api/v1/vm.attest   {"nonce": "<hex, 1-32 bytes>", "pcrs": "sha256:0-9+sha384:0-9"}
//                           -> 200 the evidence bundle (attestation/evidence.h)
// Errors are {"error": "<message>"} with 400 (a malformed request: unknown keys, bad hex, bad
// PCR list), 404 (no such endpoint), 405 (wrong method), 413 (a body over kMaxApiBody), 503
// (the VM has no vTPM, or it could not quote), 500 (anything else).
//
// The socket is created with mode 0600 (the umask is 0177 while it is bound); a path that
// exists is refused, not replaced. Each connection serves one request; a client that sends
// nothing for kApiReadTimeoutSec is dropped.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "vmm/manager/attest.h"

namespace vmm {

inline constexpr size_t kMaxApiBody = 64 * 1024;
inline constexpr int kApiReadTimeoutSec = 5;

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON
};

// An API client's attest body, parsed strictly (untrusted input: an API client).
Result<QuoteRequest> ParseAttestRequest(std::string_view body);
std::string AttestRequestToJson(const QuoteRequest& request);
// {"error": message} with the HTTP status an Error of this kind maps to.
ApiResponse ErrorResponse(const Error& error);

// The client side (`vmm attest`): one request on the API socket, the response whatever its
// status; an Error only when no HTTP response came (no socket, no server, a timeout). The
// body is capped at kMaxApiResponse bytes.
inline constexpr size_t kMaxApiResponse = 8u << 20;
Result<ApiResponse> CallApi(const std::string& socket_path, const std::string& method,
                            const std::string& target, const std::string& body, int timeout_sec);

// The "error" of an error response's JSON body, or the body itself if it has none.
std::string ApiErrorMessage(const ApiResponse& response);

class ApiServer {
 public:
  struct Handlers {
    // Runs on the server's one worker thread; null: 503 "the VM has no vTPM".
    std::function<Result<std::string>(const QuoteRequest&)> attest;
  };

  // Binds `path` (clients connect, and wait, from now on); serves nothing yet. Call it
  // before starting the VM's processes so that a bad path fails first.
  static Result<std::unique_ptr<ApiServer>> Bind(const std::string& path);
  // Serves the socket on a new thread (once).
  void Serve(Handlers handlers);
  // Stops serving, joins the thread, removes the socket.
  ~ApiServer();

  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

 private:
  struct Impl;
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmm
