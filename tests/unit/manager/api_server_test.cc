// The management API's socket, routes and request parsing (vmm/manager/api_server.h), with a
// fake attest handler; the quote behind it is tested against a real vTPM in attest_test.cc.
#include "vmm/manager/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/tpm_alg.h"
#include "tests/unit/common/temp_dir.h"

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

}  // namespace
}  // namespace vmm
