#include "vmm/manager/api_server.h"

#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/hex.h"
#include "base/version.h"

namespace vmm {
namespace {

using nlohmann::json;

std::string ErrorJson(const std::string& message) { return json{{"error", message}}.dump() + "\n"; }

void Reply(httplib::Response& res, const ApiResponse& r) {
  res.status = r.status;
  res.set_content(r.body, "application/json");
}

}  // namespace

Result<QuoteRequest> ParseAttestRequest(std::string_view body) {
  if (body.size() > kMaxApiBody) return InvalidArgument("the request body is too large");
  json doc;
  try {
    doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/true,
                      /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("the request body is not JSON: ") + e.what());
  }
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
  return {status, ErrorJson(error.ToString())};
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

struct ApiServer::Impl {
  httplib::Server server;
  std::string path;
  std::thread thread;
};

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ApiServer::~ApiServer() {
  if (!impl_) return;
  if (impl_->thread.joinable()) {
    // stop() only acts on a server that is listening: wait for the thread to get there.
    for (int i = 0; i < 2000 && !impl_->server.is_running(); ++i) usleep(1000);
    impl_->server.stop();
    impl_->thread.join();
  }
  unlink(impl_->path.c_str());
}

Result<std::unique_ptr<ApiServer>> ApiServer::Bind(const std::string& path) {
  struct sockaddr_un probe;
  if (path.empty() || path.size() >= sizeof(probe.sun_path)) {
    return InvalidArgument("--api-socket '" + path + "': a path of 1 to " +
                           std::to_string(sizeof(probe.sun_path) - 1) + " bytes");
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
  s.new_task_queue = [] { return new httplib::ThreadPool(1); };
  s.set_keep_alive_max_count(1);
  s.set_read_timeout(kApiReadTimeoutSec, 0);
  s.set_write_timeout(kApiReadTimeoutSec, 0);
  s.set_payload_max_length(kMaxApiBody);
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = "no endpoint " + req.method + " " + req.path;
    if (res.status == 413)
      message = "the request body is over " + std::to_string(kMaxApiBody) + " bytes";
    if (res.status == 400) message = "malformed HTTP request";
    res.set_content(ErrorJson(message), "application/json");
  });
  const mode_t old_mask = umask(0177);
  const bool bound = s.bind_to_port(path, 1);
  const int saved = errno;
  umask(old_mask);
  if (!bound) return Error(ErrorKind::kSystem, "--api-socket '" + path + "': cannot bind", saved);
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

void ApiServer::Serve(Handlers handlers) {
  if (impl_->thread.joinable()) return;
  httplib::Server& s = impl_->server;
  s.Get("/api/v1/vmm.ping", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, {200, json{{"version", std::string("vmm ") + VMM_VERSION}}.dump() + "\n"});
  });
  auto attest = handlers.attest;
  s.Put("/api/v1/vm.attest", [attest](const httplib::Request& req, httplib::Response& res) {
    if (!attest) {
      Reply(res, {503, ErrorJson("the VM has no vTPM (vmm run --tpm), so nothing to quote")});
      return;
    }
    auto request = ParseAttestRequest(req.body);
    if (!request) {
      Reply(res, ErrorResponse(request.error()));
      return;
    }
    auto bundle = attest(*request);
    Reply(res, bundle ? ApiResponse{200, *bundle} : ErrorResponse(bundle.error()));
  });
  // Other methods on known paths: 405.
  auto wrong_method = [](const httplib::Request& req, httplib::Response& res) {
    Reply(res, {405, ErrorJson(req.method + " is not allowed on " + req.path)});
  };
  s.Put("/api/v1/vmm.ping", wrong_method);
  s.Post("/api/v1/vmm.ping", wrong_method);
  s.Get("/api/v1/vm.attest", wrong_method);
  s.Post("/api/v1/vm.attest", wrong_method);

  Impl* raw = impl_.get();
  impl_->thread = std::thread([raw] { raw->server.listen_after_bind(); });
}

}  // namespace vmm
