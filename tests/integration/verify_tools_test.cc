// vmm-verify as a process, and against the tools it must interoperate with (README "Verifying
// evidence (tenants)"): its exit codes; tpm2_checkquote accepting a quote from our software TPM
// as `vmm-verify unpack` writes it; and a quote made by a real swtpm with tpm2_quote (the AK a
// primary key of the endorsement hierarchy, as the vTPM's), packed by `vmm-verify pack`,
// verifying against a CA the test issues for that AK.
// Tests that need swtpm or tpm2-tools skip, saying so, where they are missing.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "attestation/appraisal.h"
#include "attestation/quote.h"
#include "base/hex.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/attestation/fake_tpm.h"
#include "tests/unit/common/temp_dir.h"

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers
namespace fs = std::filesystem;
using vmm::testing::ProcessResult;
using vmm::testing::RunProcess;
using vmm::testing_util::TempDir;

const Bytes kNonce = {0xfe, 0xed, 0xfa, 0xce, 0xca, 0xfe, 0xbe, 0xef,
                      0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};

// The tool's path from $PATH, or "" (RunProcess execs a path, it does not search).
std::string ToolPath(const std::string& name) {
  ProcessResult r = RunProcess({"/bin/sh", "-c", "command -v " + name}, 10);
  if (r.exit_code != 0) return "";
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}
bool HaveTool(const std::string& name) { return !ToolPath(name).empty(); }

void Write(const std::string& path, std::string_view text) {
  std::ofstream(path, std::ios::binary) << text;
}
void Write(const std::string& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
}
Bytes Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

ProcessResult VmmVerify(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {vmm::testing::BinDir() + "/vmm-verify"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, 60);
}

// ---------------------------------------------------------------- the CLI alone
class VerifyCliTest : public ::testing::Test {
 protected:
  VerifyCliTest() {
    Write(dir_.File("evidence.json"), SerializeEvidence(MakeEvidence(tpm_, ca_, kNonce)));
    Write(dir_.File("ca.pem"), ca_.pem());
  }
  FakeTpm tpm_;
  TestCa ca_{"vmm test CA"};
  TempDir dir_;
};

TEST_F(VerifyCliTest, ValidBundleWithoutPolicyIsAWarningAndExits1) {
  ProcessResult r = VmmVerify({"--evidence", dir_.File("evidence.json"), "--ca",
                               dir_.File("ca.pem"), "--nonce", HexBytes(kNonce)});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("pass  quote-signature"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict: warning"), std::string::npos) << r.out;
}

TEST_F(VerifyCliTest, WrongNonceIsContraindicated) {
  ProcessResult r = VmmVerify({"--evidence", dir_.File("evidence.json"), "--ca",
                               dir_.File("ca.pem"), "--nonce", "00112233", "--format", "json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("\"ear.status\": \"contraindicated\""), std::string::npos) << r.out;
}

TEST_F(VerifyCliTest, UsageErrorsExit2WithAMessage) {
  std::string ev = dir_.File("evidence.json"), ca = dir_.File("ca.pem"), n = HexBytes(kNonce);
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--ca", ca, "--nonce", n}, "--evidence is required"},
      {{"--evidence", ev, "--ca", dir_.File("missing.pem"), "--nonce", n}, "cannot open"},
      {{"--evidence", ev, "--ca", ev, "--nonce", n}, "not a PEM certificate"},
      {{"--evidence", ev, "--ca", ca, "--nonce", "xyz"}, "--nonce"},
      {{"--evidence", ev, "--ca", ca, "--nonce", n, "--format", "jwt"}, "needs --sign-key"},
      {{"--evidence", ev, "--ca", ca, "--nonce", n, "--format", "yaml"}, "yaml"},
      {{"--evidence", ev, "--ca", ca, "--nonce", n, "--policy", ca}, "--policy"},
      {{"--bogus"}, "--bogus"},
  };
  for (const Case& c : cases) {
    ProcessResult r = VmmVerify(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

TEST_F(VerifyCliTest, GarbageBundleExits1NamingTheFormat) {
  Write(dir_.File("garbage.json"), std::string("{\"format\": 1"));
  ProcessResult r = VmmVerify({"--evidence", dir_.File("garbage.json"), "--ca", dir_.File("ca.pem"),
                               "--nonce", HexBytes(kNonce)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("fail  evidence-format"), std::string::npos) << r.out;
}

TEST_F(VerifyCliTest, JwtWithSignKey) {
  EvpPkeyPtr key = NewP256();
  Write(dir_.File("key.pem"), PemOf(key.get(), true));
  ProcessResult r = VmmVerify({"--evidence", dir_.File("evidence.json"), "--ca",
                               dir_.File("ca.pem"), "--nonce", HexBytes(kNonce), "--format", "jwt",
                               "--sign-key", dir_.File("key.pem"), "--out", dir_.File("ear.jwt")});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // warning: no policy
  std::string jwt(reinterpret_cast<const char*>(Read(dir_.File("ear.jwt")).data()),
                  Read(dir_.File("ear.jwt")).size());
  EXPECT_EQ(std::count(jwt.begin(), jwt.end(), '.'), 2) << jwt;
  EXPECT_EQ(jwt.rfind("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.", 0), 0u) << jwt;
}

TEST_F(VerifyCliTest, UnpackThenPackGivesTheSameBundle) {
  ProcessResult r =
      VmmVerify({"unpack", "--evidence", dir_.File("evidence.json"), "--dir", dir_.File("files")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = VmmVerify({"pack", "--dir", dir_.File("files"), "--out", dir_.File("again.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Read(dir_.File("again.json")), Read(dir_.File("evidence.json")));
}

// ---------------------------------------------------------------- tpm2_checkquote
TEST_F(VerifyCliTest, Tpm2CheckquoteAcceptsOurUnpackedQuote) {
  if (!HaveTool("tpm2_checkquote")) GTEST_SKIP() << "tpm2_checkquote not found (tpm2-tools)";
  ProcessResult r =
      VmmVerify({"unpack", "--evidence", dir_.File("evidence.json"), "--dir", dir_.File("files")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string d = dir_.File("files");
  std::vector<std::string> check = {ToolPath("tpm2_checkquote"),
                                    "-u",
                                    d + "/ak.pub.pem",
                                    "-m",
                                    d + "/quote.msg",
                                    "-s",
                                    d + "/quote.sig",
                                    "-f",
                                    d + "/quote.pcrs",
                                    "-g",
                                    "sha256",
                                    "-q"};
  std::vector<std::string> good = check;
  good.push_back(HexBytes(kNonce));
  r = RunProcess(good, 60);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // ...and with the AK as TPM2B_PUBLIC. (Not with -e: tpm2-tools 5.4 replays PCR 0 from zero,
  // ignoring the log's StartupLocality 3 event; later versions apply it.)
  good[2] = d + "/ak.pub";
  r = RunProcess(good, 60);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  if (HaveTool("tpm2_eventlog")) {
    r = RunProcess({ToolPath("tpm2_eventlog"), d + "/eventlog.bin"}, 60);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("EV_IPL"), std::string::npos) << r.out;
  }
  std::vector<std::string> bad = check;
  bad.push_back("00" + HexBytes(kNonce).substr(2));
  r = RunProcess(bad, 60);
  EXPECT_NE(r.exit_code, 0) << "tpm2_checkquote accepted the wrong nonce";
}

// ---------------------------------------------------------------- a real swtpm
class Swtpm {
 public:
  explicit Swtpm(const std::string& dir) : dir_(dir) {
    port_ = FreePort();
    fs::create_directories(dir + "/state");
    ProcessResult r =
        RunProcess({ToolPath("swtpm"), "socket", "--tpm2", "--server",
                    "type=tcp,bindaddr=127.0.0.1,port=" + std::to_string(port_), "--ctrl",
                    "type=tcp,bindaddr=127.0.0.1,port=" + std::to_string(port_ + 1), "--tpmstate",
                    "dir=" + dir + "/state", "--flags", "not-need-init,startup-clear", "--daemon",
                    "--pid", "file=" + dir + "/swtpm.pid"},
                   30);
    started_ = r.exit_code == 0;
    error_ = r.err;
    std::ifstream(dir + "/swtpm.pid") >> pid_;
  }
  ~Swtpm() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100 && kill(pid_, 0) == 0; ++i) usleep(20000);
  }
  bool started() const { return started_ && pid_ > 0; }
  const std::string& error() const { return error_; }

  // A tpm2-tools command against this swtpm; transient objects and sessions are flushed after
  // each (the swtpm TCTI has no resource manager).
  ProcessResult Tool(std::vector<std::string> argv) {
    std::string cmd = "export TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=" + std::to_string(port_) +
                      "; cd " + dir_ + " && ";
    for (const std::string& a : argv) cmd += "'" + a + "' ";
    cmd += "&& tpm2_flushcontext -t && tpm2_flushcontext -s";
    return RunProcess({"/bin/sh", "-c", cmd}, 60);
  }

 private:
  static int FreePort() {
    // Two consecutive free ports: ask for one, try it and the next (a race with other users of
    // the machine is possible but unlikely within this test).
    for (int attempt = 0; attempt < 20; ++attempt) {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof(a);
      bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
      int port = ntohs(a.sin_port);
      close(s);
      int s2 = socket(AF_INET, SOCK_STREAM, 0);
      a.sin_port = htons(static_cast<uint16_t>(port + 1));
      bool ok = port < 65535 && bind(s2, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
      close(s2);
      if (ok) return port;
    }
    return 23421;
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool started_ = false;
  std::string error_;
};

TEST(SwtpmVerifyTest, QuoteFromSwtpmPackedAndVerified) {
  for (const char* tool : {"swtpm", "tpm2_createek", "tpm2_createprimary", "tpm2_readpublic",
                           "tpm2_quote", "tpm2_pcrextend", "tpm2_flushcontext"}) {
    if (!HaveTool(tool)) GTEST_SKIP() << tool << " not found (swtpm, tpm2-tools)";
  }
  TempDir dir;
  Swtpm tpm(dir.path());
  ASSERT_TRUE(tpm.started()) << tpm.error();
  std::string d = dir.path();

  // A boot log in SHA-256 (swtpm started at locality 0: no StartupLocality event), extended
  // into the swtpm event by event as the platform would.
  auto builder = EventLogBuilder::Create({kAlgSha256});
  ASSERT_TRUE(builder.has_value());
  EventLogBuilder& b = *builder;
  ASSERT_TRUE(b.AddSCrtmVersion(B("vmm 0.1.0")).has_value());
  ASSERT_TRUE(b.AddPlatformConfigFlags(B(R"({"cpus":1,"schema":"vmm-config/1"})"), 1).has_value());
  ASSERT_TRUE(b.Measure(4, kEvIpl, B("kernel"), B("a kernel")).has_value());
  ASSERT_TRUE(b.AddIpl(8, "console=ttyS0").has_value());
  ASSERT_TRUE(b.Measure(9, kEvIpl, B("initramfs"), B("an initramfs")).has_value());
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) ASSERT_TRUE(b.AddSeparator(pcr).has_value());
  auto log = ParseEventLog(b.bytes());
  ASSERT_TRUE(log.has_value());
  for (const Event& e : log->events) {
    if (e.type == kEvNoAction) continue;
    ProcessResult r = tpm.Tool(
        {"tpm2_pcrextend", std::to_string(e.pcr) + ":sha256=" + HexBytes(e.digests[0].bytes)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  Write(d + "/eventlog.bin", b.bytes());

  ProcessResult r =
      tpm.Tool({"tpm2_createek", "-c", "ek.ctx", "-G", "ecc", "-u", "ek.pem", "-f", "pem"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The AK as the vTPM makes it: a restricted ECDSA P-256 primary key of the endorsement
  // hierarchy (a quote's qualifiedSigner names it by hierarchy and name alone).
  r = tpm.Tool({"tpm2_createprimary", "-C", "e", "-G", "ecc256:ecdsa-sha256:null", "-g", "sha256",
                "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign", "-c",
                "ak.ctx"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = tpm.Tool({"tpm2_readpublic", "-c", "ak.ctx", "-o", "ak.pub"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = tpm.Tool({"tpm2_quote", "-c", "ak.ctx", "-l", "sha256:0,1,2,3,4,5,6,7,8,9", "-q",
                HexBytes(kNonce), "-m", "quote.msg", "-s", "quote.sig", "-o", "quote.pcrs", "-g",
                "sha256"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // The CA certifies this AK and EK, as `vmm vtpm provision` would after the credential
  // challenge.
  TestCa ca("vmm test vTPM CA");
  Bytes ak_pub = Read(d + "/ak.pub");
  ASSERT_GT(ak_pub.size(), 2u);
  auto ak = ParseAkPublic(std::span<const uint8_t>(ak_pub).subspan(2));
  ASSERT_TRUE(ak.has_value()) << ak.error().message();
  Write(d + "/ak.crt.pem", ca.Issue(AkSpec(), ak->key.get()));
  Bytes ek_pem = Read(d + "/ek.pem");
  BIO* bio = BIO_new_mem_buf(ek_pem.data(), static_cast<int>(ek_pem.size()));
  EvpPkeyPtr ek(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  ASSERT_TRUE(ek);
  Write(d + "/ek.crt.pem", ca.Issue(EkSpec(), ek.get()));
  Write(d + "/ca.pem", ca.pem());

  r = VmmVerify({"pack", "--dir", d, "--out", d + "/evidence.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> verify = {"--evidence", d + "/evidence.json", "--ca", d + "/ca.pem",
                                     "--nonce",    HexBytes(kNonce)};
  auto policy = PolicyFromEventLog(*log, "swtpm-test");
  ASSERT_TRUE(policy.has_value()) << policy.error().message();
  Write(d + "/policy.json", SerializePolicy(*policy));
  std::vector<std::string> with_policy = verify;
  with_policy.insert(with_policy.end(), {"--policy", d + "/policy.json"});
  r = VmmVerify(with_policy);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verdict: affirming"), std::string::npos) << r.out;

  // The same quote for another nonce is refused.
  verify[5] = "00" + verify[5].substr(2);
  r = VmmVerify(verify);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("fail  nonce"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vmm::attestation
