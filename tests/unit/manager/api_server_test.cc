// The management API's socket, routes and request parsing (vmm/manager/api_server.h), with a
// fake attest handler; the quote behind it is tested against a real vTPM in attest_test.cc.
#include "vmm/manager/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <poll.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/tpm_alg.h"
#include "tests/unit/common/in_child.h"
#include "tests/unit/common/temp_dir.h"
#include "vmm/manager/lifecycle.h"

namespace vmm {
namespace {

using testing_util::TempDir;

TEST(PcrSelection, ParsesTpm2ToolsSyntax) {
  auto sel = ParsePcrSelection("sha256:0,1,4-6+sha384:9");
  ASSERT_TRUE(sel) << sel.error().ToString();
  ASSERT_EQ(sel->banks.size(), 2u);
  EXPECT_EQ(sel->banks[0].alg, kTpmAlgSha256);
  EXPECT_EQ(sel->banks[0].pcrs, (std::vector<uint32_t>{0, 1, 4, 5, 6}));
  EXPECT_EQ(sel->banks[1].alg, kTpmAlgSha384);
  EXPECT_EQ(sel->banks[1].pcrs, (std::vector<uint32_t>{9}));
  EXPECT_EQ(PcrSelectionToString(*sel), "sha256:0,1,4,5,6+sha384:9");
  // Duplicates and order collapse to an ascending set.
  EXPECT_EQ(PcrSelectionToString(*ParsePcrSelection("sha256:7,3,3")), "sha256:3,7");
  EXPECT_EQ(PcrSelectionToString(DefaultQuoteSelection()),
            "sha256:0,1,2,3,4,5,6,7,8,9+sha384:0,1,2,3,4,5,6,7,8,9");
}

TEST(PcrSelection, RefusesBadLists) {
  for (const char* bad : {"", "sha256", "md5:0", "sha256:24", "sha256:01", "sha256:5-3",
                          "sha256:0+sha256:1", "sha256:a", "sha256:0,,1", "sha256:-1", "sha256:0-",
                          "sha1:0+sha256:0+sha384:0+sha512:0+sha1:1"}) {
    auto sel = ParsePcrSelection(bad);
    EXPECT_FALSE(sel) << "'" << bad << "' was accepted";
    if (!sel) {
      EXPECT_EQ(sel.error().kind(), ErrorKind::kInvalidArgument) << bad;
    }
  }
}

TEST(AttestRequest, ParsesAndRoundTrips) {
  auto r = ParseAttestRequest(R"({"nonce": "00FF10", "pcrs": "sha256:0-2"})");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->nonce, (std::vector<uint8_t>{0x00, 0xff, 0x10}));
  EXPECT_EQ(PcrSelectionToString(r->pcrs), "sha256:0,1,2");
  auto again = ParseAttestRequest(AttestRequestToJson(*r));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->nonce, r->nonce);
  EXPECT_EQ(PcrSelectionToString(again->pcrs), "sha256:0,1,2");
  // Without pcrs: the default selection.
  auto d = ParseAttestRequest(R"({"nonce": "01"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(PcrSelectionToString(d->pcrs), PcrSelectionToString(DefaultQuoteSelection()));
}

TEST(AttestRequest, RefusesMalformedBodiesWithTheReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "not JSON"},
      {R"({"nonce": "01", "nonce": "02"})", "\"nonce\" is repeated"},
      {R"({"nonce": [[["01"]]]})", "not JSON of the form"},
      {"[]", "JSON object"},
      {R"({"pcrs": "sha256:0"})", "\"nonce\" is required"},
      {R"({"nonce": 5})", "hex string"},
      {R"({"nonce": "0g"})", "not hex"},
      {R"({"nonce": ""})", "1 to 32 bytes"},
      {R"({"nonce": "0000000000000000000000000000000000000000000000000000000000000000ff"})",
       "1 to 32 bytes"},
      {R"({"nonce": "01", "extra": 1})", "unknown key \"extra\""},
      {R"({"nonce": "01", "pcrs": "sha999:1"})", "unknown PCR bank"},
      {R"({"nonce": "01", "pcrs": 3})", "\"pcrs\" must be a string"},
  };
  for (const auto& [body, why] : cases) {
    auto r = ParseAttestRequest(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument) << body;
    EXPECT_NE(r.error().message().find(why), std::string::npos)
        << body << " -> " << r.error().message();
  }
  EXPECT_FALSE(ParseAttestRequest(std::string(kMaxApiBody + 1, ' ')));
}

std::string ErrorOf(const ApiResponse& r) {
  return nlohmann::json::parse(r.body).at("error").get<std::string>();
}

class ApiServerTest : public ::testing::Test {
 protected:
  TempDir dir_{"vmm-api"};
  std::string sock_ = dir_.File("api.sock");
};

TEST_F(ApiServerTest, PingAndSocketMode) {
  auto api = ApiServer::Bind(sock_);
  ASSERT_TRUE(api) << api.error().ToString();
  (*api)->Serve({});
  struct stat st;
  ASSERT_EQ(lstat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto r = CallApi(sock_, "GET", "/api/v1/vmm.ping", "", 5);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(nlohmann::json::parse(r->body).at("version").get<std::string>().rfind("vmm ", 0), 0u);
  api->reset();
  EXPECT_NE(lstat(sock_.c_str(), &st), 0) << "the socket outlived the server";
}

TEST_F(ApiServerTest, RefusesAnExistingPathAndALongOne) {
  dir_.Write("api.sock", std::vector<uint8_t>{'x'});
  auto api = ApiServer::Bind(sock_);
  ASSERT_FALSE(api);
  EXPECT_NE(api.error().message().find("exists"), std::string::npos);
  EXPECT_EQ(dir_.ReadText("api.sock"), "x") << "the file was replaced";
  EXPECT_FALSE(ApiServer::Bind(std::string(200, 'a')));
  EXPECT_FALSE(ApiServer::Bind(""));
}

TEST_F(ApiServerTest, AnswersErrorsAsJsonWithTheirStatus) {
  auto api = ApiServer::Bind(sock_);
  ASSERT_TRUE(api);
  (*api)->Serve({});  // no vTPM
  auto r = CallApi(sock_, "PUT", "/api/v1/vm.attest", R"({"nonce":"01"})", 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(ErrorOf(*r).find("no vTPM"), std::string::npos);
  r = CallApi(sock_, "GET", "/api/v1/nothing", "", 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(ErrorOf(*r).find("no endpoint"), std::string::npos);
  r = CallApi(sock_, "GET", "/api/v1/vm.attest", "", 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  r = CallApi(sock_, "PUT", "/api/v1/vm.attest", std::string(kMaxApiBody + 10, ' '), 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST_F(ApiServerTest, AttestCallsTheHandlerWithTheParsedRequest) {
  auto api = ApiServer::Bind(sock_);
  ASSERT_TRUE(api);
  std::vector<QuoteRequest> seen;
  ApiServer::Handlers h;
  h.attest = [&seen](const QuoteRequest& r) -> Result<std::string> {
    seen.push_back(r);
    if (r.nonce.size() == 1) return Error(ErrorKind::kProtocol, "TPM2_Quote: out of memory");
    return std::string("{\"bundle\": true}\n");
  };
  (*api)->Serve(h);
  auto r = CallApi(sock_, "PUT", "/api/v1/vm.attest", R"({"nonce":"ab","pcrs":"sha256:4"})", 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(ErrorOf(*r).find("TPM2_Quote"), std::string::npos);
  r = CallApi(sock_, "PUT", "/api/v1/vm.attest", R"({"nonce":"abcd"})", 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"bundle\": true}\n");
  r = CallApi(sock_, "PUT", "/api/v1/vm.attest", R"({"nonce":"zz"})", 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);  // the handler is not called for a bad request
  api->reset();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].nonce, (std::vector<uint8_t>{0xab}));
  EXPECT_EQ(PcrSelectionToString(seen[0].pcrs), "sha256:4");
}

TEST_F(ApiServerTest, ASilentClientDoesNotBlockTheNextOne) {
  auto api = ApiServer::Bind(sock_);
  ASSERT_TRUE(api);
  (*api)->Serve({});
  // A client that connects and sends nothing is dropped after kApiReadTimeoutSec; meanwhile
  // the next client waits for the one worker, then gets its answer.
  int silent = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_.c_str());
  ASSERT_EQ(connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto r = CallApi(sock_, "GET", "/api/v1/vmm.ping", "", kApiReadTimeoutSec + 10);
  close(silent);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
}

TEST(CallApi, SaysWhatIsWrongWithTheSocketPath) {
  TempDir dir("vmm-api");
  auto r = CallApi(dir.File("none.sock"), "GET", "/api/v1/vmm.ping", "", 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  dir.Write("file", std::vector<uint8_t>{1});
  r = CallApi(dir.File("file"), "GET", "/api/v1/vmm.ping", "", 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not a socket"), std::string::npos);
}

// The authorisation table: each role reaches exactly the endpoints the header lists, and a
// caller with no role reaches none, whatever the handlers would answer.
TEST(ApiAuthorisation, EachRoleReachesExactlyItsEndpoints) {
  const std::map<ApiRole, std::set<std::string_view>> allowed = {
      {ApiRole::kAdmin,
       {"vmm.ping", "vm.info", "vm.counters", "vm.pause", "vm.resume", "vm.shutdown", "vm.attest",
        "vm.tpm.ek", "vm.tpm.ak"}},
      {ApiRole::kOperator,
       {"vmm.ping", "vm.info", "vm.counters", "vm.pause", "vm.resume", "vm.shutdown"}},
      {ApiRole::kTenant, {"vmm.ping", "vm.info", "vm.attest", "vm.tpm.ek", "vm.tpm.ak"}},
      {ApiRole::kAuditor, {"vmm.ping", "vm.info", "vm.counters", "vm.tpm.ek", "vm.tpm.ak"}},
      {ApiRole::kNone, {}},
  };
  for (const auto& [role, names] : allowed) {
    ApiHandlers h;
    int called = 0;
    h.authorize = [role = role](const ApiPeer&) { return role; };
    h.info = [&] {
      ++called;
      return std::string("{}");
    };
    h.counters = h.info;
    h.lifecycle = [&](const LifecycleRequest&) {
      ++called;
      return ApiResponse{200, "{}"};
    };
    h.attest = [&](const QuoteRequest&) -> Result<std::string> {
      ++called;
      return std::string("{}");
    };
    h.tpm_certificates = [&](ApiAction) -> Result<std::string> {
      ++called;
      return std::string("{}");
    };
    std::vector<std::string> audited;
    h.audit = [&](const ApiPeer&, ApiRole r, std::string_view action, int status,
                  std::string_view) {
      EXPECT_EQ(r, role);
      audited.push_back(std::string(action) + " " + std::to_string(status));
    };
    for (const ApiEndpoint& e : ApiEndpoints()) {
      called = 0;
      ApiCall call{std::string(e.method), std::string(e.path),
                   e.action == ApiAction::kAttest ? R"({"nonce":"01"})" : "", ApiPeer{}};
      ApiResponse r = HandleApiCall(call, h);
      const bool may = names.count(e.name) > 0;
      EXPECT_EQ(RoleMayCall(role, e.action), may) << ApiRoleName(role) << " " << e.name;
      if (may) {
        EXPECT_EQ(r.status, 200) << ApiRoleName(role) << " " << e.name << ": " << r.body;
        EXPECT_EQ(called, e.action == ApiAction::kPing ? 0 : 1) << e.name;
      } else {
        EXPECT_EQ(r.status, 403) << ApiRoleName(role) << " " << e.name;
        EXPECT_EQ(called, 0) << ApiRoleName(role) << " reached " << e.name;
        EXPECT_NE(ErrorOf(r).find(role == ApiRole::kNone ? "has no role" : "may not call"),
                  std::string::npos)
            << r.body;
      }
      EXPECT_EQ(audited.back(), std::string(e.name) + " " + std::to_string(r.status));
    }
    EXPECT_EQ(audited.size(), ApiEndpoints().size());
  }
}

// A path that is not UTF-8 (api_request_fuzzer found it) gets a JSON error, not an exception.
TEST(ApiAuthorisation, APathThatIsNotUtf8GetsAJsonError) {
  ApiHandlers h;
  h.authorize = [](const ApiPeer&) { return ApiRole::kAdmin; };
  ApiResponse r = HandleApiCall({"GET", "\xbd\xf5>\xf5", "", ApiPeer{}}, h);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(ErrorOf(r).find("no endpoint GET"), std::string::npos) << r.body;
}

TEST(ApiAuthorisation, WithoutAPolicyOnlyTheManagersUidIsAdmin) {
  ApiHandlers h;
  ApiCall call{"GET", "/api/v1/vmm.ping", "", ApiPeer{}};
  call.peer.uid = geteuid();
  EXPECT_EQ(HandleApiCall(call, h).status, 403) << "no authoriser: nobody has a role";
  h.authorize = OwnerIsAdmin(geteuid());
  EXPECT_EQ(HandleApiCall(call, h).status, 200);
  call.peer.uid = geteuid() + 1;
  EXPECT_EQ(HandleApiCall(call, h).status, 403);
  // Unknown paths and methods are only told apart for a caller with a role.
  call = {"GET", "/api/v1/nothing", "", ApiPeer{}};
  call.peer.uid = geteuid();
  EXPECT_EQ(HandleApiCall(call, h).status, 404);
  call = {"DELETE", "/api/v1/vm.info", "", ApiPeer{}};
  call.peer.uid = geteuid();
  EXPECT_EQ(HandleApiCall(call, h).status, 405);
}

TEST(LifecycleRequest, ParsesEmptyBodiesAndTheShutdownDeadline) {
  auto r = ParseLifecycleRequest(ApiAction::kPause, "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->action, ApiAction::kPause);
  ASSERT_TRUE(ParseLifecycleRequest(ApiAction::kResume, " {} "));
  r = ParseLifecycleRequest(ApiAction::kShutdown, R"({"deadline_sec": 42})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deadline_sec, 42u);
  EXPECT_EQ(ParseLifecycleRequest(ApiAction::kShutdown, "{}")->deadline_sec,
            kDefaultShutdownDeadlineSec);
  const std::pair<ApiAction, const char*> bad[] = {
      {ApiAction::kShutdown, R"({"deadline_sec": 0})"},
      {ApiAction::kShutdown, R"({"deadline_sec": 301})"},
      {ApiAction::kShutdown, R"({"deadline_sec": -1})"},
      {ApiAction::kShutdown, R"({"deadline_sec": 1.5})"},
      {ApiAction::kShutdown, R"({"deadline_sec": "10"})"},
      {ApiAction::kShutdown, R"({"deadline_sec": 1, "deadline_sec": 2})"},
      {ApiAction::kPause, R"({"deadline_sec": 5})"},
      {ApiAction::kPause, "[]"},
      {ApiAction::kResume, "{"},
  };
  for (const auto& [action, body] : bad) {
    auto p = ParseLifecycleRequest(action, body);
    EXPECT_FALSE(p) << body;
    if (!p) {
      EXPECT_EQ(p.error().kind(), ErrorKind::kInvalidArgument) << body;
    }
  }
}

TEST(Lifecycle, DecidesEachRequestInEachState) {
  LifecycleRequest pause{ApiAction::kPause, 10}, resume{ApiAction::kResume, 10},
      shutdown{ApiAction::kShutdown, 7};
  Transition t = Decide(VmState::kRunning, pause);
  EXPECT_EQ(t.response.status, 200);
  EXPECT_EQ(t.signals, std::vector<int>{SIGSTOP});
  EXPECT_EQ(t.next, VmState::kPaused);
  t = Decide(VmState::kPaused, pause);
  EXPECT_EQ(t.response.status, 409);
  EXPECT_TRUE(t.signals.empty());
  t = Decide(VmState::kPaused, resume);
  EXPECT_EQ(t.signals, std::vector<int>{SIGCONT});
  EXPECT_EQ(t.next, VmState::kRunning);
  EXPECT_EQ(Decide(VmState::kRunning, resume).response.status, 409);
  t = Decide(VmState::kRunning, shutdown);
  EXPECT_EQ(t.response.status, 202);
  EXPECT_EQ(t.signals, std::vector<int>{SIGPWR});
  EXPECT_EQ(t.deadline_sec, 7u);
  t = Decide(VmState::kPaused, shutdown);  // runs again to see the button
  EXPECT_EQ(t.signals, (std::vector<int>{SIGCONT, SIGPWR}));
  for (const LifecycleRequest& r : {pause, resume, shutdown}) {
    t = Decide(VmState::kShuttingDown, r);
    EXPECT_EQ(t.response.status, 409);
    EXPECT_TRUE(t.signals.empty());
    EXPECT_EQ(t.next, VmState::kShuttingDown);
  }
}

TEST(Lifecycle, TheMainLoopAnswersTheApiThread) {
  auto lc = Lifecycle::Create();
  ASSERT_TRUE(lc);
  std::vector<int> sent;
  std::thread main_loop([&] {
    for (int served = 0; served < 2;) {
      pollfd p{lc->fd(), POLLIN, 0};
      if (poll(&p, 1, 5000) != 1) return;
      if (lc->Serve([&](const Transition& t) {
            sent.insert(sent.end(), t.signals.begin(), t.signals.end());
          })) {
        ++served;
      }
    }
  });
  ApiResponse a = lc->Submit({ApiAction::kPause, 10});
  ApiResponse b = lc->Submit({ApiAction::kPause, 10});
  main_loop.join();
  EXPECT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(b.status, 409) << b.body;
  EXPECT_EQ(sent, std::vector<int>{SIGSTOP});
  EXPECT_EQ(lc->state(), VmState::kPaused);
  EXPECT_EQ(lc->counts().pause, 1u);
  EXPECT_EQ(lc->counts().refused, 1u);
}

TEST(VmUuid, NewOnesAreVersionFourAndTheCheckRefusesOthers) {
  const std::string a = NewVmUuid(), b = NewVmUuid();
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsVmUuid(a)) << a;
  EXPECT_EQ(a[14], '4');
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos) << a;
  for (const char* bad :
       {"", "0b4e61b2-0000-4000-8000-5f0c1a2b3c4", "0B4E61B2-0000-4000-8000-5f0c1a2b3c4d",
        "0b4e61b2x0000-4000-8000-5f0c1a2b3c4d", "0b4e61b2-0000-4000-8000-5f0c1a2b3c4dd"}) {
    EXPECT_FALSE(IsVmUuid(bad)) << bad;
  }
}

// Two real uids on one socket: the manager's (root here) and a test uid that the policy's
// authoriser makes a tenant. The tenant attests but cannot shut the VM down; a uid with no
// role gets 403 everywhere. The server runs confined, as in vmm run.
TEST_F(ApiServerTest, TwoRealUidsGetTheirRolesFromTheKernelsCredentials) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as a second uid";
  constexpr uid_t kTenant = 65534, kStranger = 65533;
  ASSERT_EQ(chmod(dir_.path().c_str(), 0711), 0);
  ApiSocketOptions o;
  o.mode = 0666;
  auto api = ApiServer::Bind(sock_, o);
  ASSERT_TRUE(api) << api.error().ToString();
  ApiHandlers h;
  std::vector<std::pair<uint32_t, std::string>> audited;
  std::mutex mu;
  h.authorize = [](const ApiPeer& p) {
    return p.uid == 0 ? ApiRole::kAdmin : p.uid == kTenant ? ApiRole::kTenant : ApiRole::kNone;
  };
  h.attest = [](const QuoteRequest&) -> Result<std::string> { return std::string("{}\n"); };
  h.lifecycle = [](const LifecycleRequest&) { return ApiResponse{202, "{}\n"}; };
  h.audit = [&](const ApiPeer& p, ApiRole, std::string_view action, int status, std::string_view) {
    std::lock_guard lock(mu);
    audited.emplace_back(p.uid, std::string(action) + " " + std::to_string(status));
  };
  (*api)->Serve(h, /*confine=*/true);
  // The client runs in a forked child of this multithreaded process: it may only make system
  // calls (no allocation: another thread may hold the allocator's lock, as under ASan), so the
  // request and the address are made here and the child writes and reads raw bytes.
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_.c_str());
  auto as = [&](uid_t uid, const char* method, const char* path, const char* body) {
    const std::string request = std::string(method) + " " + path +
                                " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                                "Content-Length: " +
                                std::to_string(std::strlen(body)) +
                                "\r\nConnection: close\r\n\r\n" + body;
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      int status = -1;
      char answer[16] = {};
      if (syscall(SYS_setresgid, uid, uid, uid) == 0 &&
          syscall(SYS_setresuid, uid, uid, uid) == 0) {
        const int c = static_cast<int>(syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0));
        size_t got = 0;
        if (c >= 0 && syscall(SYS_connect, c, &addr, sizeof(addr)) == 0 &&
            syscall(SYS_write, c, request.data(), request.size()) ==
                static_cast<long>(request.size())) {
          while (got < 12) {
            const long n = syscall(SYS_read, c, answer + got, 12 - got);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
          }
        }
        // "HTTP/1.1 200": the status is bytes 9 to 11.
        if (got == 12)
          status = (answer[9] - '0') * 100 + (answer[10] - '0') * 10 + (answer[11] - '0');
      }
      (void)!syscall(SYS_write, fds[1], &status, sizeof(status));
      syscall(SYS_exit_group, 0);
    }
    close(fds[1]);
    int status = -3;
    (void)!read(fds[0], &status, sizeof(status));
    close(fds[0]);
    waitpid(pid, nullptr, 0);
    return status;
  };
  EXPECT_EQ(as(kTenant, "PUT", "/api/v1/vm.attest", R"({"nonce":"01"})"), 200);
  EXPECT_EQ(as(kTenant, "PUT", "/api/v1/vm.shutdown", "{}"), 403);
  EXPECT_EQ(as(kStranger, "GET", "/api/v1/vmm.ping", ""), 403);
  EXPECT_EQ(as(kStranger, "PUT", "/api/v1/vm.attest", R"({"nonce":"01"})"), 403);
  EXPECT_EQ(as(0, "PUT", "/api/v1/vm.shutdown", "{}"), 202);
  api->reset();
  std::lock_guard lock(mu);
  const std::vector<std::pair<uint32_t, std::string>> want = {{kTenant, "vm.attest 200"},
                                                              {kTenant, "vm.shutdown 403"},
                                                              {kStranger, "vmm.ping 403"},
                                                              {kStranger, "vm.attest 403"},
                                                              {0, "vm.shutdown 202"}};
  EXPECT_EQ(audited, want);
}

// A client that trickles its request is cut off at the request deadline; clients beyond
// kMaxApiPending are answered 503 at once; the server then serves the next client normally.
TEST_F(ApiServerTest, SlowAndTooManyClientsAreCutOff) {
  auto api = ApiServer::Bind(sock_);
  ASSERT_TRUE(api);
  (*api)->Serve({}, /*confine=*/true);
  auto connect_raw = [&] {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_.c_str());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  };
  // The trickler: one byte a second, never a whole request.
  const int slow = connect_raw();
  const auto start = std::chrono::steady_clock::now();
  std::thread trickle([&] {
    const char req[] = "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa";
    for (size_t i = 0; i < sizeof(req) - 1; ++i) {
      if (send(slow, req + i, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  char buf[256];
  const ssize_t n = recv(slow, buf, sizeof(buf), 0);  // EOF when the server gives up
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LE(n, 0) << "the trickler got an answer";
  EXPECT_LT(waited, std::chrono::seconds(kApiRequestDeadlineSec + 5));
  shutdown(slow, SHUT_RDWR);
  trickle.join();
  close(slow);
  // Silent clients fill the queue; the ones after it get 503 at once.
  std::vector<int> silent;
  for (size_t i = 0; i < kMaxApiPending + 4; ++i) silent.push_back(connect_raw());
  // The accepting thread answers the surplus as it reaches them (give a loaded host time).
  int busy = 0;
  std::vector<bool> answered(silent.size(), false);
  for (int round = 0; round < 100 && busy < 3; ++round) {
    for (size_t i = 0; i < silent.size(); ++i) {
      pollfd p{silent[i], POLLIN, 0};
      if (answered[i] || poll(&p, 1, 0) != 1) continue;
      answered[i] = true;
      const ssize_t got = recv(silent[i], buf, sizeof(buf), MSG_DONTWAIT);
      if (got >= 12 && std::string_view(buf, 12) == "HTTP/1.1 503") ++busy;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(busy, 3) << "no connection was turned away";
  for (int fd : silent) close(fd);
  // Once the worker has drained the closed connections, the next client is served (a client
  // that arrives while the queue is still full is turned away: it tries again).
  Result<ApiResponse> r = Error(ErrorKind::kInternal, "not tried");
  for (int attempt = 0; attempt < 50; ++attempt) {
    r = CallApi(sock_, "GET", "/api/v1/vmm.ping", "", kApiReadTimeoutSec + 10);
    if (r && r->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
}

// The API thread's confinement: a syscall outside its filter kills the process (here a
// forked child); the thread holds no capabilities after ConfineApiThread.
TEST(ApiThreadConfinement, ForbiddenSyscallsKillAndNoCapabilitiesRemain) {
  for (const char* what : {"openat", "socket", "kill"}) {
    std::fflush(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int sv[2];
      socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
      std::thread t([&] {
        if (!ConfineApiThread(sv[0])) _exit(10);
        // Capabilities: none effective, permitted or inheritable in this thread.
        uint64_t eff = 0, prm = 0;
        struct {
          uint32_t version;
          int pid;
        } hdr{0x20080522, 0};
        struct {
          uint32_t effective, permitted, inheritable;
        } data[2] = {};
        if (syscall(SYS_capget, &hdr, data) != 0) _exit(11);
        eff = data[0].effective | (uint64_t{data[1].effective} << 32);
        prm = data[0].permitted | (uint64_t{data[1].permitted} << 32);
        if (eff != 0 || prm != 0) _exit(12);
        if (std::string_view(what) == "openat")
          syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY);
        if (std::string_view(what) == "socket") syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
        if (std::string_view(what) == "kill") syscall(SYS_kill, getppid(), 0);
        _exit(13);  // still alive: the filter let it through
      });
      t.join();
      _exit(14);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) << what << ": status " << status;
  }
}

}  // namespace
}  // namespace vmm
