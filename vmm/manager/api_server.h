// The manager's management API (ARCHITECTURE.md §8): HTTP/1.1 with JSON bodies over a unix
// stream socket, as Firecracker and Cloud Hypervisor serve theirs (`vmm run --api-socket PATH`,
// `curl --unix-socket PATH`, `vmm ctl`). cpp-httplib reads the HTTP; every request then goes
// through HandleApiCall, which routes, authorises and parses bodies without touching a socket
// (so it is unit-tested and fuzzed as it is).
//
// Endpoints (ApiEndpoints() is the table; README.md "Management API" shows each):
//   GET /api/v1/vmm.ping      {"version"}                                 every role
//   GET /api/v1/vm.info       name, uuid, state, configuration, digests   every role
//   GET /api/v1/vm.counters   API requests, lifecycle actions, children   admin operator auditor
//   PUT /api/v1/vm.pause      {}                                          admin operator
//   PUT /api/v1/vm.resume     {}                                          admin operator
//   PUT /api/v1/vm.shutdown   {"deadline_sec": 1..300}: ACPI power button, then a forced stop
//                                                                         admin operator
//   PUT /api/v1/vm.attest     {"nonce": HEX, "pcrs": LIST} -> the evidence bundle
//                                                                         admin tenant
//   GET /api/v1/vm.tpm.ek     the vTPM's EK certificates (PEM)            admin tenant auditor
//   GET /api/v1/vm.tpm.ak     the AK certificate (PEM)                    admin tenant auditor
// Errors are {"error": "<message>"}: 400 a malformed request, 403 a role that may not call
// the endpoint (or no role), 404 no such endpoint, 405 a wrong method, 409 an action the VM's
// state does not allow (resume a running VM), 413 a body over kMaxApiBody, 503 the VM cannot
// do it (no vTPM, the quote failed, too many connections), 500 anything else.
//
// Who calls: the kernel's SO_PEERCRED of each connection (uid, gid, pid at connect time) and
// SO_PEERSEC (the SELinux label, where an LSM gives one); never anything the client sends.
// ApiHandlers::authorize maps that to a role (the launch policy's `roles`); without one, only
// the socket's owner (the manager's effective uid) is admin (OwnerIsAdmin). Every call, allowed or
// refused, is reported to ApiHandlers::audit.
//
// The socket is created with mode 0600 (ApiSocketOptions widens it on purpose); a path that
// exists is refused, not replaced. Each connection serves one request and must send it whole
// within kApiRequestDeadlineSec; at most kMaxApiPending connections wait for the one worker,
// more are answered 503 at once. The worker thread runs confined (ConfineApiThread).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "policy/launch_policy.h"
#include "vmm/manager/attest.h"

namespace vmm {

inline constexpr size_t kMaxApiBody = 64 * 1024;
inline constexpr int kApiReadTimeoutSec = 5;
inline constexpr int kApiRequestDeadlineSec = 10;  // the whole request, however slowly sent
inline constexpr size_t kMaxApiPending = 16;       // connections waiting for the worker
inline constexpr uint32_t kDefaultShutdownDeadlineSec = 10;
inline constexpr uint32_t kMaxShutdownDeadlineSec = 300;

// The roles are the launch policy's (policy/launch_policy.h), which binds them to uids and gids.
using ApiRole = policy::ApiRole;
inline std::string_view ApiRoleName(ApiRole role) { return policy::RoleName(role); }

// The caller, as the kernel reports it for the connection.
struct ApiPeer {
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t pid = 0;
  std::vector<uint32_t> groups;  // SO_PEERGROUPS: the supplementary groups at connect time
  std::string context;           // SO_PEERSEC; empty where no LSM labels sockets
};

enum class ApiAction {
  kPing,
  kInfo,
  kCounters,
  kPause,
  kResume,
  kShutdown,
  kAttest,
  kTpmEk,
  kTpmAk
};

struct ApiEndpoint {
  std::string_view method;
  std::string_view path;
  ApiAction action;
  std::string_view name;  // "vm.pause": the audit record's action
  uint32_t roles;         // RoleBit()s
};
constexpr uint32_t RoleBit(ApiRole role) { return 1u << static_cast<unsigned>(role); }
std::span<const ApiEndpoint> ApiEndpoints();
const ApiEndpoint& EndpointOf(ApiAction action);
bool RoleMayCall(ApiRole role, ApiAction action);
// The authoriser without a launch policy: the socket's owner is admin, nobody else has a role.
std::function<ApiRole(const ApiPeer&)> OwnerIsAdmin(uint32_t owner_uid);

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON
};

// An API client's attest body, parsed strictly (untrusted input: an API client).
Result<QuoteRequest> ParseAttestRequest(std::string_view body);
std::string AttestRequestToJson(const QuoteRequest& request);

struct LifecycleRequest {
  ApiAction action = ApiAction::kPause;  // kPause, kResume or kShutdown
  uint32_t deadline_sec = kDefaultShutdownDeadlineSec;
};
// A pause, resume or shutdown body: empty or {} (shutdown: {"deadline_sec": N} too).
Result<LifecycleRequest> ParseLifecycleRequest(ApiAction action, std::string_view body);

// {"error": message} with the HTTP status an Error of this kind maps to.
ApiResponse ErrorResponse(const Error& error);
ApiResponse ErrorResponse(int status, const std::string& message);

struct ApiHandlers {
  // Each runs on the server's worker thread. A null handler answers 503 saying what is
  // missing (no vTPM: no attest or key export).
  std::function<Result<std::string>(const QuoteRequest&)> attest;
  std::function<std::string()> info;                               // a JSON object
  std::function<ApiResponse(const LifecycleRequest&)> lifecycle;   // 200/202 JSON, or 409
  std::function<Result<std::string>(ApiAction)> tpm_certificates;  // kTpmEk, kTpmAk
  std::function<std::string()> counters;  // a JSON object; the server adds its own "api"
  // The caller's role. Null: nobody has one (ApiServer::Serve puts OwnerIsAdmin(its euid)).
  std::function<ApiRole(const ApiPeer&)> authorize;
  // Every call: who, the role they had, the endpoint's name (or "unknown"), the status and,
  // for errors, the message.
  std::function<void(const ApiPeer&, ApiRole, std::string_view action, int status,
                     std::string_view error)>
      audit;
};

// One request, as HandleApiCall sees it.
struct ApiCall {
  std::string method;
  std::string path;
  std::string body;
  ApiPeer peer;
};

// Routing, authorisation, body parsing and the handler call, for one request.
ApiResponse HandleApiCall(const ApiCall& call, const ApiHandlers& handlers);

// The client side (`vmm attest`, `vmm ctl`): one request on the API socket, the response
// whatever its status; an Error only when no HTTP response came (no socket, no server, a
// timeout). The body is capped at kMaxApiResponse bytes.
inline constexpr size_t kMaxApiResponse = 8u << 20;
Result<ApiResponse> CallApi(const std::string& socket_path, const std::string& method,
                            const std::string& target, const std::string& body, int timeout_sec);

// The "error" of an error response's JSON body, or the body itself if it has none.
std::string ApiErrorMessage(const ApiResponse& response);

struct ApiSocketOptions {
  mode_t mode = 0600;                    // --api-socket-mode
  gid_t group = static_cast<gid_t>(-1);  // --api-socket-group; -1: the manager's
};

class ApiServer {
 public:
  using Handlers = ApiHandlers;

  // Binds `path` (clients connect, and wait, from now on); serves nothing yet. Call it
  // before starting the VM's processes so that a bad path fails first.
  static Result<std::unique_ptr<ApiServer>> Bind(const std::string& path,
                                                 const ApiSocketOptions& options = {});
  // Serves the socket on a new thread (once). With `confine`, the worker confines itself
  // (ConfineApiThread) before it serves its first request.
  void Serve(Handlers handlers, bool confine = false);
  // The listening socket (the manager's filter admits accept on it only).
  int listen_fd() const;
  // The socket's directory (an O_PATH fd, owned by the server): where ~ApiServer removes it.
  int socket_dir_fd() const;
  // Stops serving, joins the thread, removes the socket.
  ~ApiServer();

  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

 private:
  struct Impl;
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Confines the calling thread (only it) for serving the API: no capabilities, no new
// privileges, no file system (Landlock, where the kernel has it), and a seccomp filter whose
// default is to kill the process (sandbox::ManagerApiThreadPolicy; accept only on
// `api_socket`). The thread shares the manager's fds (the vTPM's data channel, the audit log)
// and its memory: this bounds what a hijacked API thread can call directly, it is not a
// process boundary (SECURITY.md).
Result<void> ConfineApiThread(int api_socket);

}  // namespace vmm
