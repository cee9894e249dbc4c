#include "vmm/manager/api_server.h"

#include <fcntl.h>
#include <httplib.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/hex.h"
#include "base/strict_json.h"
#include "base/unique_fd.h"
#include "base/version.h"
#include "sandbox/landlock.h"
#include "sandbox/policy.h"
#include "sandbox/roles.h"

namespace vmm {
namespace {

using nlohmann::json;

// A message may quote the client's bytes (its path): not UTF-8 is replaced, never thrown.
std::string ErrorJson(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

constexpr uint32_t kEveryRole = RoleBit(ApiRole::kAdmin) | RoleBit(ApiRole::kOperator) |
                                RoleBit(ApiRole::kTenant) | RoleBit(ApiRole::kAuditor);
constexpr uint32_t kLifecycleRoles = RoleBit(ApiRole::kAdmin) | RoleBit(ApiRole::kOperator);
constexpr uint32_t kTenantRoles = RoleBit(ApiRole::kAdmin) | RoleBit(ApiRole::kTenant);
constexpr uint32_t kReaderRoles =
    RoleBit(ApiRole::kAdmin) | RoleBit(ApiRole::kTenant) | RoleBit(ApiRole::kAuditor);
constexpr uint32_t kMonitorRoles =
    RoleBit(ApiRole::kAdmin) | RoleBit(ApiRole::kOperator) | RoleBit(ApiRole::kAuditor);

constexpr ApiEndpoint kEndpoints[] = {
    {"GET", "/api/v1/vmm.ping", ApiAction::kPing, "vmm.ping", kEveryRole},
    {"GET", "/api/v1/vm.info", ApiAction::kInfo, "vm.info", kEveryRole},
    {"GET", "/api/v1/vm.counters", ApiAction::kCounters, "vm.counters", kMonitorRoles},
    {"PUT", "/api/v1/vm.pause", ApiAction::kPause, "vm.pause", kLifecycleRoles},
    {"PUT", "/api/v1/vm.resume", ApiAction::kResume, "vm.resume", kLifecycleRoles},
    {"PUT", "/api/v1/vm.shutdown", ApiAction::kShutdown, "vm.shutdown", kLifecycleRoles},
    {"PUT", "/api/v1/vm.attest", ApiAction::kAttest, "vm.attest", kTenantRoles},
    {"GET", "/api/v1/vm.tpm.ek", ApiAction::kTpmEk, "vm.tpm.ek", kReaderRoles},
    {"GET", "/api/v1/vm.tpm.ak", ApiAction::kTpmAk, "vm.tpm.ak", kReaderRoles},
};

}  // namespace

std::span<const ApiEndpoint> ApiEndpoints() { return kEndpoints; }

std::function<ApiRole(const ApiPeer&)> OwnerIsAdmin(uint32_t owner_uid) {
  return [owner_uid](const ApiPeer& peer) {
    return peer.uid == owner_uid ? ApiRole::kAdmin : ApiRole::kNone;
  };
}

const ApiEndpoint& EndpointOf(ApiAction action) {
  for (const ApiEndpoint& e : kEndpoints) {
    if (e.action == action) return e;
  }
  return kEndpoints[0];  // unreachable: every action has a row
}

bool RoleMayCall(ApiRole role, ApiAction action) {
  return role != ApiRole::kNone && (EndpointOf(action).roles & RoleBit(role)) != 0;
}

Result<QuoteRequest> ParseAttestRequest(std::string_view body) {
  if (body.size() > kMaxApiBody) return InvalidArgument("the request body is too large");
  StrictJson parsed = ParseStrictJson(body, 2);
  switch (parsed.problem) {
    case StrictJson::Problem::kInvalid:
    case StrictJson::Problem::kTooDeep:
      return InvalidArgument("the request body is not JSON of the form {\"nonce\": HEX}");
    case StrictJson::Problem::kRepeatedKey:
      return InvalidArgument("the key \"" + parsed.repeated_key + "\" is repeated");
    case StrictJson::Problem::kNone:
      break;
  }
  json& doc = parsed.doc;
  if (!doc.is_object()) return InvalidArgument("the request body must be a JSON object");
  QuoteRequest request;
  bool have_nonce = false;
  request.pcrs = DefaultQuoteSelection();
  for (auto& [key, value] : doc.items()) {
    if (key == "nonce") {
      if (!value.is_string()) return InvalidArgument("\"nonce\" must be a hex string");
      auto bytes = ParseHexBytes(value.get<std::string>());
      if (!bytes) return InvalidArgument("\"nonce\" is not hex (two digits a byte)");
      request.nonce = std::move(*bytes);
      have_nonce = true;
    } else if (key == "pcrs") {
      if (!value.is_string()) return InvalidArgument("\"pcrs\" must be a string like sha256:0-9");
      ASSIGN_OR_RETURN(request.pcrs, ParsePcrSelection(value.get<std::string>()));
    } else {
      return InvalidArgument("unknown key \"" + key + "\" (nonce, pcrs)");
    }
  }
  if (!have_nonce) return InvalidArgument("\"nonce\" is required");
  RETURN_IF_ERROR(CheckQuoteRequest(request));
  return request;
}

std::string AttestRequestToJson(const QuoteRequest& request) {
  return json{{"nonce", HexBytes(request.nonce)}, {"pcrs", PcrSelectionToString(request.pcrs)}}
      .dump();
}

Result<LifecycleRequest> ParseLifecycleRequest(ApiAction action, std::string_view body) {
  LifecycleRequest request;
  request.action = action;
  const bool shutdown = action == ApiAction::kShutdown;
  const std::string form = shutdown ? "{} or {\"deadline_sec\": N}" : "{} or nothing";
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return request;
  if (body.size() > kMaxApiBody) return InvalidArgument("the request body is too large");
  StrictJson parsed = ParseStrictJson(body, 1);
  if (parsed.problem == StrictJson::Problem::kRepeatedKey) {
    return InvalidArgument("the key \"" + parsed.repeated_key + "\" is repeated");
  }
  if (parsed.problem != StrictJson::Problem::kNone || !parsed.doc.is_object()) {
    return InvalidArgument("the request body must be " + form);
  }
  for (auto& [key, value] : parsed.doc.items()) {
    if (shutdown && key == "deadline_sec") {
      if (!value.is_number_unsigned() || value.get<uint64_t>() < 1 ||
          value.get<uint64_t>() > kMaxShutdownDeadlineSec) {
        return InvalidArgument("\"deadline_sec\" must be a whole number of seconds, 1 to " +
                               std::to_string(kMaxShutdownDeadlineSec));
      }
      request.deadline_sec = static_cast<uint32_t>(value.get<uint64_t>());
    } else {
      return InvalidArgument("unknown key \"" + key + "\" (the body must be " + form + ")");
    }
  }
  return request;
}

ApiResponse ErrorResponse(int status, const std::string& message) {
  return {status, ErrorJson(message)};
}

ApiResponse ErrorResponse(const Error& error) {
  int status = 500;
  switch (error.kind()) {
    case ErrorKind::kInvalidArgument:
      status = 400;
      break;
    case ErrorKind::kNotFound:
    case ErrorKind::kProtocol:
    case ErrorKind::kUnsupported:
      status = 503;
      break;
    default:
      break;
  }
  return ErrorResponse(status, error.ToString());
}

namespace {

ApiResponse Dispatch(const ApiEndpoint& e, const ApiCall& call, const ApiHandlers& h) {
  auto from = [](const Result<std::string>& r) {
    return r ? ApiResponse{200, *r} : ErrorResponse(r.error());
  };
  switch (e.action) {
    case ApiAction::kPing:
      return {200, json{{"version", std::string("vmm ") + VMM_VERSION}}.dump() + "\n"};
    case ApiAction::kInfo:
      if (!h.info) return ErrorResponse(503, "no VM information here");
      return {200, h.info()};
    case ApiAction::kCounters:
      if (!h.counters) return ErrorResponse(503, "no counters here");
      return {200, h.counters()};
    case ApiAction::kPause:
    case ApiAction::kResume:
    case ApiAction::kShutdown: {
      if (!h.lifecycle) return ErrorResponse(503, "this server does not run a VM");
      auto request = ParseLifecycleRequest(e.action, call.body);
      if (!request) return ErrorResponse(request.error());
      return h.lifecycle(*request);
    }
    case ApiAction::kAttest: {
      if (!h.attest) {
        return ErrorResponse(503, "the VM has no vTPM (vmm run --tpm), so nothing to quote");
      }
      auto request = ParseAttestRequest(call.body);
      if (!request) return ErrorResponse(request.error());
      return from(h.attest(*request));
    }
    case ApiAction::kTpmEk:
    case ApiAction::kTpmAk:
      if (!h.tpm_certificates) {
        return ErrorResponse(503, "the VM has no vTPM (vmm run --tpm), so no keys to export");
      }
      if (!call.body.empty()) return ErrorResponse(400, "GET takes no body");
      return from(h.tpm_certificates(e.action));
  }
  return ErrorResponse(500, "unhandled endpoint");
}

}  // namespace

ApiResponse HandleApiCall(const ApiCall& call, const ApiHandlers& h) {
  const ApiRole role = h.authorize ? h.authorize(call.peer) : ApiRole::kNone;
  const ApiEndpoint* endpoint = nullptr;
  bool path_known = false;
  for (const ApiEndpoint& e : kEndpoints) {
    if (e.path != call.path) continue;
    path_known = true;
    if (e.method == call.method) endpoint = &e;
  }
  ApiResponse response;
  if (role == ApiRole::kNone) {
    response =
        ErrorResponse(403, "uid " + std::to_string(call.peer.uid) + " (gid " +
                               std::to_string(call.peer.gid) + ") has no role on this VM's API");
  } else if (!path_known) {
    response = ErrorResponse(404, "no endpoint " + call.method + " " + call.path);
  } else if (!endpoint) {
    response = ErrorResponse(405, call.method + " is not allowed on " + call.path);
  } else if (!RoleMayCall(role, endpoint->action)) {
    response = ErrorResponse(403, "the " + std::string(ApiRoleName(role)) + " role may not call " +
                                      std::string(endpoint->name));
  } else {
    response = Dispatch(*endpoint, call, h);
  }
  if (h.audit) {
    std::string error = response.status >= 400 ? ApiErrorMessage(response) : "";
    h.audit(call.peer, role, endpoint ? endpoint->name : std::string_view("unknown"),
            response.status, error);
  }
  return response;
}

Result<ApiResponse> CallApi(const std::string& socket_path, const std::string& method,
                            const std::string& target, const std::string& body, int timeout_sec) {
  struct stat st;
  if (stat(socket_path.c_str(), &st) != 0) {
    return Error(ErrorKind::kInvalidArgument, "--api-socket '" + socket_path + "'", errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return InvalidArgument("--api-socket '" + socket_path + "' is not a socket");
  }
  httplib::Client client(socket_path);
  client.set_address_family(AF_UNIX);
  client.set_connection_timeout(timeout_sec, 0);
  client.set_read_timeout(timeout_sec, 0);
  client.set_write_timeout(timeout_sec, 0);
  std::string received;
  bool too_big = false;
  auto sink = [&](const char* data, size_t n) {
    if (received.size() + n > kMaxApiResponse) {
      too_big = true;
      return false;
    }
    received.append(data, n);
    return true;
  };
  if (method != "GET" && method != "PUT") {
    return Error(ErrorKind::kInternal, "CallApi: method " + method);
  }
  httplib::Request req;
  req.method = method;
  req.path = target;
  if (method == "PUT") {
    req.body = body;
    req.set_header("Content-Type", "application/json");
  }
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    return sink(data, n);
  };
  httplib::Result res = client.send(req);
  if (too_big) {
    return Error(ErrorKind::kProtocol,
                 "the API's response is over " + std::to_string(kMaxApiResponse) + " bytes");
  }
  if (!res) {
    return Error(ErrorKind::kSystem, "the API at '" + socket_path +
                                         "' did not answer: " + httplib::to_string(res.error()));
  }
  return ApiResponse{res->status, std::move(received)};
}

std::string ApiErrorMessage(const ApiResponse& response) {
  try {
    json doc = json::parse(response.body);
    if (doc.is_object() && doc.contains("error") && doc["error"].is_string()) {
      return doc["error"].get<std::string>();
    }
  } catch (const json::exception&) {
  }
  return response.body.substr(0, 512);
}

namespace {

// The peer of the connection this thread is serving (set per connection, below).
thread_local ApiPeer t_peer;
// Set while a connection is answered 503 at once (too many waiting).
thread_local bool t_overloaded = false;

ApiPeer PeerOf(int sock) {
  ApiPeer peer;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.pid = cred.pid;
  } else {
    peer.uid = peer.gid = static_cast<uint32_t>(-1);  // no role can match
  }
  gid_t groups[256];
  socklen_t groups_len = sizeof(groups);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups, &groups_len) == 0) {
    peer.groups.assign(groups, groups + groups_len / sizeof(gid_t));
  }  // more than 256 groups (ERANGE): the primary gid alone decides
  char label[256];
  socklen_t label_len = sizeof(label);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERSEC, label, &label_len) == 0 && label_len > 0 &&
      label_len <= sizeof(label)) {
    peer.context.assign(label, strnlen(label, label_len));
  }
  return peer;
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// One connection, with a deadline for the whole exchange: a client that trickles its request
// byte by byte is cut off at kApiRequestDeadlineSec, not kept for a timeout per read.
class DeadlineStream : public httplib::Stream {
 public:
  explicit DeadlineStream(int sock)
      : sock_(sock), deadline_ms_(NowMs() + int64_t{kApiRequestDeadlineSec} * 1000) {}
  bool is_readable() const override { return Wait(POLLIN); }
  bool is_writable() const override { return Wait(POLLOUT); }
  ssize_t read(char* ptr, size_t size) override {
    if (!Wait(POLLIN)) return -1;
    return recv(sock_, ptr, size, 0);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!Wait(POLLOUT)) return -1;
    return send(sock_, ptr, size, MSG_NOSIGNAL);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = t_peer.pid;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  socket_t socket() const override { return sock_; }

 private:
  bool Wait(short events) const {
    for (;;) {
      const int64_t left = deadline_ms_ - NowMs();
      if (left <= 0) return false;
      pollfd p{sock_, events, 0};
      const int n =
          poll(&p, 1, static_cast<int>(std::min<int64_t>(left, kApiReadTimeoutSec * 1000)));
      if (n > 0) return (p.revents & (events | POLLHUP)) != 0;
      if (n == 0) return false;  // nothing for kApiReadTimeoutSec
      if (errno != EINTR) return false;
    }
  }
  int sock_;
  int64_t deadline_ms_;
};

// One worker; at most kMaxApiPending connections wait for it. More are answered 503 on the
// accepting thread at once (a flood costs the manager no memory or fds beyond the cap).
class BoundedQueue : public httplib::TaskQueue {
 public:
  BoundedQueue() : worker_([this] { Work(); }) {}
  ~BoundedQueue() override { shutdown(); }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    if (tasks_.size() >= kMaxApiPending || stopping_) {
      lock.unlock();
      t_overloaded = true;
      fn();  // answers 503 and closes
      t_overloaded = false;
      return;
    }
    tasks_.push_back(std::move(fn));
    cv_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_ && !worker_.joinable()) return;
      stopping_ = true;
      cv_.notify_one();
    }
    if (worker_.joinable()) worker_.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        fn = std::move(tasks_.front());
        tasks_.pop_front();
        // Connections still waiting when the server stops are closed unanswered.
        t_overloaded = stopping_;
      }
      fn();
      t_overloaded = false;
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread worker_;
};

class PeerServer : public httplib::Server {
 public:
  int listen_fd() const { return svr_sock_; }

 private:
  bool process_and_close_socket(socket_t sock) override {
    if (t_overloaded) {
      static constexpr char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Content-Length: 47\r\nConnection: close\r\n\r\n"
          "{\"error\":\"too many connections: try again\"}\n";
      (void)!send(sock, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
      t_peer = PeerOf(sock);
      DeadlineStream stream(sock);
      bool closed = false;
      process_request(stream, true, closed, nullptr);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return true;
  }
};

}  // namespace

struct ApiServer::Impl {
  PeerServer server;
  std::string path;
  UniqueFd dir;      // the socket's directory (O_PATH), opened at Bind
  std::string name;  // the socket's name in it
  std::thread thread;
  ApiHandlers handlers;
  std::mutex counts_mu;
  std::map<std::string, std::map<int, uint64_t>> counts;  // endpoint -> status -> calls
};

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

int ApiServer::listen_fd() const { return impl_->server.listen_fd(); }

int ApiServer::socket_dir_fd() const { return impl_->dir.get(); }

ApiServer::~ApiServer() {
  if (!impl_) return;
  if (impl_->thread.joinable()) {
    // stop() only acts on a server that is listening: wait for the thread to get there.
    for (int i = 0; i < 2000 && !impl_->server.is_running(); ++i) usleep(1000);
    impl_->server.stop();
    impl_->thread.join();
  }
  // Through the directory it was bound in: the entry it made, whatever the path names now.
  unlinkat(impl_->dir.get(), impl_->name.c_str(), 0);
}

Result<std::unique_ptr<ApiServer>> ApiServer::Bind(const std::string& path,
                                                   const ApiSocketOptions& options) {
  struct sockaddr_un probe;
  if (path.empty() || path.size() >= sizeof(probe.sun_path)) {
    return InvalidArgument("--api-socket '" + path + "': a path of 1 to " +
                           std::to_string(sizeof(probe.sun_path) - 1) + " bytes");
  }
  if ((options.mode & ~0777u) != 0) {
    return InvalidArgument("--api-socket-mode: permission bits only (0600, 0660, ...)");
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    return InvalidArgument("--api-socket '" + path +
                           "' exists (another VM's socket, or a stale one: remove it first)");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  httplib::Server& s = impl->server;
  s.set_address_family(AF_UNIX);
  s.new_task_queue = [] { return new BoundedQueue(); };
  s.set_keep_alive_max_count(1);
  s.set_read_timeout(kApiReadTimeoutSec, 0);
  s.set_write_timeout(kApiReadTimeoutSec, 0);
  s.set_payload_max_length(kMaxApiBody);
  const mode_t old_mask = umask(0177);
  const bool bound = s.bind_to_port(path, 1);
  const int saved = errno;
  umask(old_mask);
  if (!bound) return Error(ErrorKind::kSystem, "--api-socket '" + path + "': cannot bind", saved);
  // Held for the socket's removal at the end, which the manager's Landlock rules allow beneath
  // this directory only (ARCHITECTURE.md §2 step 5).
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  impl->name = slash == std::string::npos ? path : path.substr(slash + 1);
  impl->dir.reset(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!impl->dir.valid()) {
    const int err = errno;
    unlink(path.c_str());
    return Error(ErrorKind::kSystem, "--api-socket '" + path + "': opening its directory", err);
  }
  // The socket was made 0600; widen it only as asked, once it is ours.
  if (options.group != static_cast<gid_t>(-1) &&
      lchown(path.c_str(), static_cast<uid_t>(-1), options.group) != 0) {
    const int err = errno;
    unlink(path.c_str());
    return Error(ErrorKind::kSystem, "--api-socket-group: chown '" + path + "'", err);
  }
  if (options.mode != 0600 && chmod(path.c_str(), options.mode) != 0) {
    const int err = errno;
    unlink(path.c_str());
    return Error(ErrorKind::kSystem, "--api-socket-mode: chmod '" + path + "'", err);
  }
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

void ApiServer::Serve(Handlers handlers, bool confine) {
  if (impl_->thread.joinable()) return;
  Impl* raw = impl_.get();
  if (!handlers.authorize) handlers.authorize = OwnerIsAdmin(geteuid());
  raw->handlers = std::move(handlers);
  // The server's own counts join the handler's counters under "api".
  auto counters = raw->handlers.counters;
  raw->handlers.counters = [raw, counters]() {
    json doc = counters ? json::parse(counters(), nullptr, false) : json::object();
    if (!doc.is_object()) doc = json::object();
    json api = json::object();
    std::lock_guard lock(raw->counts_mu);
    for (const auto& [name, by_status] : raw->counts) {
      for (const auto& [status, n] : by_status) api[name][std::to_string(status)] = n;
    }
    doc["api"] = std::move(api);
    return doc.dump() + "\n";
  };
  auto serve = [raw](const httplib::Request& req, httplib::Response& res) {
    ApiCall call{req.method, req.path, req.body, t_peer};
    ApiResponse r = HandleApiCall(call, raw->handlers);
    std::string name = "unknown";
    for (const ApiEndpoint& e : ApiEndpoints()) {
      if (e.path == call.path && e.method == call.method) name = e.name;
    }
    {
      std::lock_guard lock(raw->counts_mu);
      ++raw->counts[name][r.status];
    }
    res.status = r.status;
    res.set_content(r.body, "application/json");
  };
  httplib::Server& s = raw->server;
  s.Get(".*", serve);
  s.Put(".*", serve);
  s.Post(".*", serve);
  s.Delete(".*", serve);
  s.Patch(".*", serve);
  s.Options(".*", serve);
  // What httplib refuses before routing (a body over the limit, a malformed request).
  s.set_error_handler([raw](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = "malformed HTTP request";
    if (res.status == 413) {
      message = "the request body is over " + std::to_string(kMaxApiBody) + " bytes";
    } else if (res.status == 404) {
      message = "no endpoint " + req.method + " " + req.path;
    }
    res.set_content(ErrorJson(message), "application/json");
    if (raw->handlers.audit) {
      raw->handlers.audit(t_peer, ApiRole::kNone, "unknown", res.status, message);
    }
    std::lock_guard lock(raw->counts_mu);
    ++raw->counts["unknown"][res.status];
  });
  raw->thread = std::thread([raw, confine] {
    if (confine) {
      if (auto r = ConfineApiThread(raw->server.listen_fd()); !r) {
        std::fprintf(stderr,
                     "vmm: error: the API thread could not confine itself: %s; the API is off\n",
                     r.error().ToString().c_str());
        return;
      }
    }
    raw->server.listen_after_bind();
  });
}

namespace {

// Clears the calling thread's capabilities with the raw calls, not libcap-ng: libcap-ng reads
// /proc/<tid>/status and /proc/self/exe, and the manager's own filter, which this thread runs
// under already, lets it open no file at all (ARCHITECTURE.md §2 step 5). The bounding set
// needs CAP_SETPCAP to change; without it (a manager that is not root) it is left, which gains
// nothing under no_new_privs and a filter without execve.
Result<void> ClearThreadCapabilities() {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return ErrnoError("the API thread: PR_CAP_AMBIENT_CLEAR_ALL");
  }
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};  // pid 0: this thread
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return ErrnoError("the API thread: capget");
  if (data[CAP_TO_INDEX(CAP_SETPCAP)].effective & CAP_TO_MASK(CAP_SETPCAP)) {
    for (int cap = 0; cap < 64; ++cap) {
      const int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
      if (r < 0) break;  // EINVAL past the kernel's last capability
      if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
        return ErrnoError("the API thread: PR_CAPBSET_DROP " + std::to_string(cap));
      }
    }
  }
  __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &hdr, none) != 0) return ErrnoError("the API thread: capset");
  return Ok();
}

}  // namespace

Result<void> ConfineApiThread(int api_socket) {
  // Capabilities and no_new_privs are per thread; so are Landlock domains and, without TSYNC,
  // seccomp filters. The worker thread started later inherits all four.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return Error(ErrorKind::kSystem, "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  }
  RETURN_IF_ERROR(ClearThreadCapabilities());
  if (auto abi = sandbox::LandlockAbi(); abi) {
    RETURN_IF_ERROR(sandbox::RestrictFilesystem(*abi, {}));
  }
  ASSIGN_OR_RETURN(sandbox::Policy policy, sandbox::ManagerApiThreadPolicy());
  return policy.ApplyToCallingThread({{"api_socket", static_cast<uint64_t>(api_socket)}});
}

}  // namespace vmm
