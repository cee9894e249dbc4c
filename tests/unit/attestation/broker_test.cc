// The key broker (attestation/broker*.h): its messages, the sealing of a secret, and the
// decisions of KeyBroker against evidence from the software TPM of fake_tpm.h, with the client
// (FetchSecret) talking to it in process or over a real unix socket.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "attestation/broker.h"
#include "attestation/broker_client.h"
#include "attestation/broker_io.h"
#include "attestation/broker_protocol.h"
#include "attestation/broker_server.h"
#include "attestation/codec.h"
#include "tests/unit/attestation/fake_tpm.h"
#include "tests/unit/common/temp_dir.h"

namespace vmm::attestation {
namespace {

using fake::Bytes;
using ::testing::HasSubstr;

std::span<const uint8_t> Span(const std::string& s) {
  return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

bool Contains(const std::string& haystack, const Bytes& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

// ------------------------------------------------------------------ messages and sealing

TEST(BrokerProtocol, MessagesRoundTrip) {
  auto req = ParseRequest(Span(SerializeRequest({"disk-key"})));
  ASSERT_TRUE(req.has_value()) << req.error().message();
  EXPECT_EQ(req->secret, "disk-key");

  Bytes nonce(32, 0x5a);
  auto ch = ParseChallenge(Span(SerializeChallenge({nonce, 60})));
  ASSERT_TRUE(ch.has_value()) << ch.error().message();
  EXPECT_EQ(ch->nonce, nonce);
  EXPECT_EQ(ch->expires_in, 60u);

  AttestationMessage at{"k", nonce, Bytes(65, 4), Bytes{'{', '}'}};
  auto at2 = ParseAttestation(Span(SerializeAttestation(at)));
  ASSERT_TRUE(at2.has_value()) << at2.error().message();
  EXPECT_EQ(at2->public_key, at.public_key);
  EXPECT_EQ(at2->evidence, at.evidence);

  ResponseMessage resp{"affirming", "ok", "{}",
                       SealedSecret{Bytes(65, 4), Bytes(12, 1), Bytes{1, 2, 3}, Bytes(16, 2)}};
  auto resp2 = ParseResponse(Span(SerializeResponse(resp)));
  ASSERT_TRUE(resp2.has_value()) << resp2.error().message();
  ASSERT_TRUE(resp2->sealed.has_value());
  EXPECT_EQ(resp2->sealed->ciphertext, (Bytes{1, 2, 3}));
  resp.sealed.reset();
  resp2 = ParseResponse(Span(SerializeResponse(resp)));
  ASSERT_TRUE(resp2.has_value());
  EXPECT_FALSE(resp2->sealed.has_value());
}

TEST(BrokerProtocol, StrictParsersNameWhatIsWrong) {
  struct Case {
    std::string text, error;
  };
  const std::string nonce(64, 'a');
  for (const Case& c : std::vector<Case>{
           {R"({"type":"request","protocol":"vmm-broker/1"})", "missing key \"secret\""},
           {R"({"type":"request","protocol":"vmm-broker/1","secret":"a","x":1})",
            "unknown key \"x\""},
           {R"({"type":"request","protocol":"vmm-broker/1","secret":"a","secret":"b"})",
            "repeated"},
           {R"({"type":"request","protocol":"vmm-broker/2","secret":"a"})", "protocol"},
           {R"({"type":"request","protocol":"vmm-broker/1","secret":"../a"})", "may hold only"},
           {R"({"type":"request","protocol":"vmm-broker/1","secret":""})", "1 to 64"},
           {R"([1])", "not a JSON object"},
           {R"({"type":"request")", "not JSON"},
       }) {
    auto r = ParseRequest(Span(c.text));
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_THAT(r.error().message(), HasSubstr(c.error)) << c.text;
  }
  for (const Case& c : std::vector<Case>{
           {R"({"type":"challenge","nonce":"00","expires_in":60})", "32 bytes"},
           {R"({"type":"challenge","nonce":")" + std::string(64, 'A') + R"(","expires_in":60})",
            "lowercase hex"},
           {R"({"type":"challenge","nonce":")" + nonce + R"(","expires_in":0})", "1 to 3600"},
           {R"({"type":"challenge","nonce":")" + nonce + R"(","expires_in":-1})", "1 to 3600"},
       }) {
    auto r = ParseChallenge(Span(c.text));
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_THAT(r.error().message(), HasSubstr(c.error)) << c.text;
  }
  const std::string key = EncodeBase64(Bytes(65, 4));
  for (const Case& c : std::vector<Case>{
           {R"({"type":"attestation","secret":"a","nonce":")" + nonce +
                R"(","public_key":"AAAA","evidence":"e30="})",
            "\"public_key\" must be 65 bytes"},
           {R"({"type":"attestation","secret":"a","nonce":")" + nonce + R"(","public_key":")" +
                key + R"(","evidence":"e30"})",
            "\"evidence\""},
           {R"({"type":"attestation","secret":"a","nonce":")" + nonce + R"(","public_key":")" +
                key + R"(","evidence":""})",
            "\"evidence\" must be 1 to"},
       }) {
    auto r = ParseAttestation(Span(c.text));
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_THAT(r.error().message(), HasSubstr(c.error)) << c.text;
  }
  auto r = ParseResponse(
      Span(std::string(R"({"type":"response","verdict":"great","reason":"","ear":""})")));
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("unknown verdict"));
  r = ParseResponse(Span(std::string(
      R"({"type":"response","verdict":"none","reason":"","ear":"","sealed":{"iv":""}})")));
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("sealed: missing key"));
  std::string big(kMaxBrokerMessageBytes + 1, ' ');
  EXPECT_THAT(ParseRequest(Span(big)).error().message(), HasSubstr("larger than"));
}

TEST(BrokerProtocol, KeyFromPointRefusesPointsOffTheCurve) {
  auto key = NewEphemeralKey();
  ASSERT_TRUE(key.has_value());
  auto point = PublicPoint(key->get());
  ASSERT_TRUE(point.has_value());
  EXPECT_TRUE(KeyFromPoint(*point).has_value());
  Bytes bad = *point;
  bad[64] ^= 1;  // y no longer matches x
  EXPECT_FALSE(KeyFromPoint(bad).has_value());
  Bytes compressed(point->begin(), point->begin() + 33);
  compressed[0] = 0x02;
  EXPECT_FALSE(KeyFromPoint(compressed).has_value());
  EXPECT_FALSE(KeyFromPoint(Bytes(65, 0)).has_value());
}

TEST(BrokerProtocol, SealedSecretOpensOnlyUnchanged) {
  auto client = NewEphemeralKey();
  ASSERT_TRUE(client.has_value());
  auto point = PublicPoint(client->get());
  ASSERT_TRUE(point.has_value());
  const Bytes secret = fake::B("the disk's passphrase");
  const Bytes nonce(32, 7);
  auto sealed = SealSecret(secret, nonce, "disk", *point);
  ASSERT_TRUE(sealed.has_value()) << sealed.error().message();
  EXPECT_EQ(sealed->ciphertext.size(), secret.size());
  EXPECT_NE(sealed->ciphertext, secret);
  auto opened = OpenSecret(*sealed, client->get(), nonce, "disk");
  ASSERT_TRUE(opened.has_value()) << opened.error().message();
  EXPECT_EQ(*opened, secret);

  auto expect_fails = [&](SealedSecret s, const Bytes& n, std::string_view name) {
    auto r = OpenSecret(s, client->get(), n, name);
    ASSERT_FALSE(r.has_value());
    EXPECT_THAT(r.error().message(), HasSubstr("does not authenticate"));
  };
  SealedSecret s = *sealed;
  s.ciphertext[0] ^= 1;
  expect_fails(s, nonce, "disk");
  s = *sealed;
  s.tag[15] ^= 0x80;
  expect_fails(s, nonce, "disk");
  s = *sealed;
  s.iv[0] ^= 1;
  expect_fails(s, nonce, "disk");
  expect_fails(*sealed, Bytes(32, 8), "disk");
  expect_fails(*sealed, nonce, "other");
  auto other = NewEphemeralKey();
  ASSERT_TRUE(other.has_value());
  EXPECT_FALSE(OpenSecret(*sealed, other->get(), nonce, "disk").has_value());
}

TEST(BrokerProtocol, BindingDataIsSha256OfNonceAndKey) {
  const Bytes nonce(32, 1), key(65, 4);
  Bytes both = nonce;
  both.insert(both.end(), key.begin(), key.end());
  EXPECT_EQ(BindingData(nonce, key), fake::Hash(EVP_sha256(), both));
  EXPECT_NE(BindingData(nonce, key), BindingData(nonce, Bytes(65, 5)));
}

// ------------------------------------------------------------------ the broker's decisions

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = fake::MakeBootLog();
    BrokerConfig config;
    config.ca_pem = ca_.pem();
    config.policy = fake::PolicyOfLog(log_, "test-policy");
    config.secrets["disk"] = secret_;
    config.nonce_lifetime = std::chrono::seconds(60);
    config.max_outstanding = 4;
    broker_ = std::make_unique<KeyBroker>(std::move(config));
  }

  // The evidence of `tpm` (by default this test's) for qualifying data `data`.
  QuoteForData Quoter(const fake::FakeTpm* tpm = nullptr, fake::EvidenceParts parts = {}) {
    return [this, tpm, parts](std::span<const uint8_t> data) -> Result<std::vector<uint8_t>> {
      const std::string text = SerializeEvidence(
          fake::MakeEvidence(tpm ? *tpm : tpm_, ca_, Bytes(data.begin(), data.end()), parts));
      return std::vector<uint8_t>(text.begin(), text.end());
    };
  }
  // In process, recording every byte each way, as a relay would see them.
  BrokerTransport Direct() {
    return [this](std::string_view body) -> Result<std::string> {
      relay_ += body;
      BrokerAnswer a = broker_->Handle(
          std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()), "test", now_);
      log_lines_ += a.log_line;
      relay_ += a.body;
      return a.body;
    };
  }
  nlohmann::json LastLog() const {
    const size_t end = log_lines_.rfind('\n');
    const size_t start = log_lines_.rfind('\n', end - 1);
    return nlohmann::json::parse(log_lines_.substr(start == std::string::npos ? 0 : start + 1, end),
                                 nullptr, false);
  }
  // A challenge for "disk", as the client would get it.
  ChallengeMessage Challenge() {
    BrokerAnswer a = broker_->Handle(Span(SerializeRequest({"disk"})), "test", now_);
    auto c = ParseChallenge(Span(a.body));
    EXPECT_TRUE(c.has_value()) << a.body;
    return c.has_value() ? *c : ChallengeMessage{};
  }

  fake::FakeTpm tpm_;
  fake::TestCa ca_{"vmm test vTPM CA"};
  Bytes log_;
  const Bytes secret_ = fake::B("correct horse battery staple");
  std::unique_ptr<KeyBroker> broker_;
  KeyBroker::Clock::time_point now_ = KeyBroker::Clock::now();
  std::string relay_, log_lines_;
};

TEST_F(BrokerTest, AffirmingEvidenceGetsTheSecretAndTheRelaySeesOnlyCiphertext) {
  auto out = FetchSecret("disk", Direct(), Quoter());
  ASSERT_TRUE(out.has_value()) << out.error().message() << "\n" << log_lines_;
  EXPECT_EQ(out->secret, secret_);
  EXPECT_EQ(out->verdict, "affirming");
  EXPECT_THAT(out->ear, HasSubstr("\"ear.status\": \"affirming\""));
  EXPECT_FALSE(Contains(relay_, secret_)) << "the secret crossed the relay in the clear";
  EXPECT_FALSE(Contains(relay_, Bytes(secret_.begin(), secret_.begin() + 8)));
  nlohmann::json line = LastLog();
  ASSERT_FALSE(line.is_discarded()) << log_lines_;
  EXPECT_EQ(line["verdict"], "released");
  EXPECT_EQ(line["secret"], "disk");
  EXPECT_EQ(line["peer"], "test");
  EXPECT_EQ(line["nonce_sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(line["ear"]["submods"]["vmm-vtpm"]["ear.status"], "affirming");
  EXPECT_EQ(broker_->outstanding(), 0u);
}

TEST_F(BrokerTest, AKernelOutsideThePolicyGetsNothingAndTheLogSaysWhy) {
  fake::EvidenceParts parts;
  parts.images.kernel = "another kernel";
  auto out = FetchSecret("disk", Direct(), Quoter(nullptr, parts));
  ASSERT_FALSE(out.has_value());
  EXPECT_THAT(out.error().message(), HasSubstr("withheld the secret (contraindicated)"));
  EXPECT_THAT(out.error().message(), HasSubstr("policy-kernel"));
  EXPECT_FALSE(Contains(relay_, secret_));
  nlohmann::json line = LastLog();
  EXPECT_EQ(line["verdict"], "withheld (contraindicated)");
  EXPECT_THAT(line["reason"].get<std::string>(), HasSubstr("failed policy-kernel"));
}

TEST_F(BrokerTest, AReplayedNonceIsRefused) {
  ChallengeMessage c = Challenge();
  auto key = NewEphemeralKey();
  ASSERT_TRUE(key.has_value());
  AttestationMessage m{"disk", c.nonce, *PublicPoint(key->get()), {}};
  m.evidence = *Quoter()(BindingData(m.nonce, m.public_key));
  const std::string body = SerializeAttestation(m);
  BrokerAnswer first = broker_->Handle(Span(body), "test", now_);
  EXPECT_TRUE(first.released) << first.body;
  BrokerAnswer again = broker_->Handle(Span(body), "test", now_);
  EXPECT_FALSE(again.released);
  EXPECT_THAT(again.body, HasSubstr("already used"));
  EXPECT_THAT(again.log_line, HasSubstr("\"verdict\":\"refused\""));
}

TEST_F(BrokerTest, AnExpiredNonceIsRefused) {
  ChallengeMessage c = Challenge();
  EXPECT_EQ(c.expires_in, 60u);
  auto key = NewEphemeralKey();
  ASSERT_TRUE(key.has_value());
  AttestationMessage m{"disk", c.nonce, *PublicPoint(key->get()), {}};
  m.evidence = *Quoter()(BindingData(m.nonce, m.public_key));
  BrokerAnswer a =
      broker_->Handle(Span(SerializeAttestation(m)), "test", now_ + std::chrono::seconds(61));
  EXPECT_FALSE(a.released);
  EXPECT_THAT(a.body, HasSubstr("nonce expired"));
  EXPECT_EQ(broker_->outstanding(), 0u);
}

TEST_F(BrokerTest, EvidenceBoundToAnotherKeyOrChallengeIsRefused) {
  // The quote names another key than the one the secret would be sealed to.
  ChallengeMessage c = Challenge();
  auto key = NewEphemeralKey(), other = NewEphemeralKey();
  ASSERT_TRUE(key.has_value() && other.has_value());
  AttestationMessage m{"disk", c.nonce, *PublicPoint(key->get()), {}};
  m.evidence = *Quoter()(BindingData(m.nonce, *PublicPoint(other->get())));
  BrokerAnswer a = broker_->Handle(Span(SerializeAttestation(m)), "test", now_);
  EXPECT_FALSE(a.released);
  EXPECT_THAT(a.body, HasSubstr("failed nonce"));
  // Another VM's evidence, quoted for another challenge.
  fake::FakeTpm other_vm;
  ChallengeMessage c2 = Challenge(), c3 = Challenge();
  AttestationMessage m2{"disk", c2.nonce, *PublicPoint(key->get()), {}};
  m2.evidence = *Quoter(&other_vm)(BindingData(c3.nonce, m2.public_key));
  a = broker_->Handle(Span(SerializeAttestation(m2)), "test", now_);
  EXPECT_FALSE(a.released);
  EXPECT_THAT(a.body, HasSubstr("failed nonce"));
  auto r = ParseResponse(Span(a.body));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->verdict, "contraindicated");
  EXPECT_FALSE(r->sealed.has_value());
}

TEST_F(BrokerTest, UnknownSecretsWrongNamesAndTooManyChallengesAreRefused) {
  auto out = FetchSecret("nothing", Direct(), Quoter());
  ASSERT_FALSE(out.has_value());
  EXPECT_THAT(out.error().message(), HasSubstr("the broker refused: no secret named"));

  // A challenge for "disk" answered for another name.
  ChallengeMessage c = Challenge();
  auto key = NewEphemeralKey();
  ASSERT_TRUE(key.has_value());
  AttestationMessage m{"other", c.nonce, *PublicPoint(key->get()), {}};
  m.evidence = *Quoter()(BindingData(m.nonce, m.public_key));
  EXPECT_THAT(broker_->Handle(Span(SerializeAttestation(m)), "test", now_).body,
              HasSubstr("the challenge was for secret"));

  for (int i = 0; i < 4; ++i) Challenge();
  BrokerAnswer a = broker_->Handle(Span(SerializeRequest({"disk"})), "test", now_);
  EXPECT_THAT(a.body, HasSubstr("too many outstanding"));
  // Expired challenges make room.
  a = broker_->Handle(Span(SerializeRequest({"disk"})), "test", now_ + std::chrono::seconds(61));
  EXPECT_THAT(a.body, HasSubstr("\"challenge\""));
  EXPECT_EQ(broker_->outstanding(), 1u);
}

TEST_F(BrokerTest, ATamperedResponseFailsOnTheClient) {
  for (const char* field : {"ciphertext", "tag"}) {
    BrokerTransport tamper = [&, field](std::string_view body) -> Result<std::string> {
      ASSIGN_OR_RETURN(std::string answer, Direct()(body));
      auto doc = nlohmann::json::parse(answer, nullptr, false);
      if (!doc.contains("sealed")) return answer;
      auto bytes = DecodeBase64Strict(doc["sealed"][field].get<std::string>(), 1 << 20);
      if (!bytes) return bytes.error();
      (*bytes)[0] ^= 0x01;
      doc["sealed"][field] = EncodeBase64(*bytes);
      return doc.dump();
    };
    auto out = FetchSecret("disk", tamper, Quoter());
    ASSERT_FALSE(out.has_value()) << field;
    EXPECT_THAT(out.error().message(), HasSubstr("does not authenticate")) << field;
  }
}

TEST_F(BrokerTest, GarbageIsRefusedAndLogged) {
  BrokerAnswer a = broker_->Handle(Span(std::string("{\"type\":\"challenge\"}")), "test", now_);
  EXPECT_THAT(a.body, HasSubstr("\"refused\""));
  EXPECT_THAT(a.log_line, HasSubstr("not \\\"challenge\\\""));
  a = broker_->Handle(Span(std::string("\xff\xfe")), "test", now_);
  EXPECT_THAT(a.body, HasSubstr("\"refused\""));
}

// Over a real unix socket, through ServeBroker, with a relay in between that records the bytes.
TEST_F(BrokerTest, OverAUnixSocketThroughARecordingRelay) {
  testing_util::TempDir dir("vmm-broker");
  auto address = ParseBrokerAddress("unix:" + dir.File("broker.sock"));
  ASSERT_TRUE(address.has_value());
  auto listener = ListenBroker(*address);
  ASSERT_TRUE(listener.has_value()) << listener.error().message();
  struct stat st {};
  ASSERT_EQ(stat(dir.File("broker.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int log_pipe[2];
  ASSERT_EQ(pipe(log_pipe), 0);
  std::atomic<bool> stop{false};
  std::thread server([&] {
    ServeLimits limits;
    limits.connection_timeout = std::chrono::seconds(5);
    EXPECT_TRUE(ServeBroker(listener->get(), *broker_, log_pipe[1], stop, limits).has_value());
  });
  std::string recorded;
  BrokerTransport relay = [&](std::string_view body) -> Result<std::string> {
    recorded += body;
    ASSIGN_OR_RETURN(std::string answer, Exchange(*address, body, 10));
    recorded += answer;
    return answer;
  };
  auto out = FetchSecret("disk", relay, Quoter());
  // A client that sends a frame larger than the limit is refused without its body.
  const Deadline deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto conn = ConnectBroker(*address, deadline);
  ASSERT_TRUE(conn.has_value());
  const uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
  ASSERT_EQ(send(conn->get(), huge, sizeof(huge), MSG_NOSIGNAL), 4);
  auto answer = ReadFrame(conn->get(), kMaxBrokerMessageBytes, deadline);
  stop = true;
  server.join();
  close(log_pipe[1]);
  std::string log;
  char buf[4096];
  for (ssize_t n; (n = read(log_pipe[0], buf, sizeof(buf))) > 0;) log.append(buf, n);
  close(log_pipe[0]);

  ASSERT_TRUE(out.has_value()) << out.error().message() << "\n" << log;
  EXPECT_EQ(out->secret, secret_);
  EXPECT_FALSE(Contains(recorded, secret_));
  EXPECT_THAT(recorded, HasSubstr("\"ciphertext\""));
  ASSERT_TRUE(answer.has_value()) << answer.error().message();
  EXPECT_THAT(*answer, HasSubstr("larger than the limit"));
  EXPECT_THAT(log, HasSubstr("\"verdict\":\"released\""));
  EXPECT_THAT(log, HasSubstr("\"peer\":\"unix:pid="));
  EXPECT_THAT(log, HasSubstr("unreadable message"));
}

TEST(BrokerIo, AddressesParseStrictly) {
  auto a = ParseBrokerAddress("tcp:127.0.0.1:8443");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->port, 8443);
  EXPECT_EQ(a->ToString(), "tcp:127.0.0.1:8443");
  EXPECT_TRUE(ParseBrokerAddress("unix:/run/x.sock").has_value());
  for (const char* bad : {"tcp:127.0.0.1", "tcp:127.0.0.1:0", "tcp:127.0.0.1:65536",
                          "tcp:localhost:80", "tcp:127.0.0.1:80x", "unix:", "http://x", ""}) {
    EXPECT_FALSE(ParseBrokerAddress(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace vmm::attestation
