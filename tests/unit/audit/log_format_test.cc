#include "vmm/manager/audit/log_format.h"

#include <gtest/gtest.h>

#include "tests/unit/audit/audit_test_util.h"

namespace vmm::audit {
namespace {

// A record of `type` with the header every record carries; `session` fills its 32 hex digits.
Record WithHeader(RecordType type, uint64_t seq, char session, std::string prev) {
  Record r;
  r.type = type;
  r.seq = seq;
  r.time = "2025-03-04T05:06:07.089Z";
  r.session = std::string(32, session);
  r.prev = std::move(prev);
  return r;
}

Record SampleRecord() {
  Record r = WithHeader(RecordType::kEvent, 7, 'c', std::string(64, 'd'));
  r.event = testing::SampleEvent("start");
  r.event.details.emplace_back("disk", "/img/a.raw");
  r.event.details.emplace_back("disk", "/img/b.raw");  // keys may repeat, order is kept
  return r;
}

TEST(AuditLogFormat, EventRoundTripsWithFieldsInOrder) {
  const Record r = SampleRecord();
  const std::string line = SerializeRecord(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.rfind("{\"v\":1,\"seq\":7,\"time\":\"2025-03-04T05:06:07.089Z\"", 0), 0u) << line;
  auto back = ParseRecord(line);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->event.action, "start");
  EXPECT_EQ(back->event.who.pid, 4242);
  EXPECT_EQ(back->event.who.context, r.event.who.context);
  EXPECT_EQ(back->event.details, r.event.details);
  EXPECT_EQ(SerializeRecord(*back), line);
}

TEST(AuditLogFormat, EveryTypeRoundTrips) {
  Record o = WithHeader(RecordType::kOpen, 1, '1', GenesisPrev());
  o.writer_pid = 99;
  o.writer_uid = 0;
  Record c = o;
  c.type = RecordType::kCheckpoint;
  c.final = true;
  c.alg = "ES256";
  c.key_fpr = std::string(64, 'e');
  c.sig = std::string(128, 'f');
  Record t = o;
  t.type = RecordType::kTornTail;
  t.fragments = {{12, std::string(64, '0')}, {0, std::string(64, '9')}};
  for (const Record& r : {o, c, t}) {
    const std::string line = SerializeRecord(r);
    auto back = ParseRecord(line);
    ASSERT_TRUE(back) << line << ": " << back.error().message();
    EXPECT_EQ(SerializeRecord(*back), line);
  }
}

TEST(AuditLogFormat, NonAsciiIsEscapedAndInvalidUtf8Replaced) {
  Record r = SampleRecord();
  r.event.vm_name = "caf\xc3\xa9 \xff";
  const std::string line = SerializeRecord(r);
  for (char ch : line) EXPECT_LT(static_cast<unsigned char>(ch), 0x80u);
  auto back = ParseRecord(line);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->event.vm_name, "caf\xc3\xa9 \xef\xbf\xbd");
}

void ExpectRefused(const std::string& line, const std::string& fragment) {
  auto r = ParseRecord(line);
  ASSERT_FALSE(r.has_value()) << line;
  EXPECT_NE(r.error().message().find(fragment), std::string::npos) << r.error().message();
}

TEST(AuditLogFormat, ParserIsStrict) {
  const std::string good = SerializeRecord(SampleRecord());
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  ExpectRefused("not json", "not valid JSON");
  ExpectRefused("[1,2]", "no \"type\"");
  ExpectRefused(replace("\"v\":1,", "\"v\":1,\"v\":1,"), "the key \"v\" is repeated");
  ExpectRefused(replace("\"v\":1,", "\"v\":1,\"extra\":0,"), "unknown key \"extra\"");
  ExpectRefused(replace("\"v\":1,", ""), "has no \"v\"");
  ExpectRefused(replace("\"v\":1", "\"v\":2"), "is not 1");
  ExpectRefused(replace("\"seq\":7", "\"seq\":-7"), "seq is not an unsigned");
  ExpectRefused(replace("\"seq\":7", "\"seq\":0"), "seq is 0");
  ExpectRefused(replace("\"seq\":7", "\"seq\":7.5"), "seq is not an unsigned");
  ExpectRefused(replace("\"result\":\"success\"", "\"result\":\"ok\""), "result");
  ExpectRefused(replace("\"action\":\"start\"", "\"action\":\"St art\""), "action");
  ExpectRefused(replace(".089Z", ".089+01:00"), "time");
  ExpectRefused(replace(std::string(32, 'c'), std::string(32, 'C')), "session");
  ExpectRefused(replace("\"type\":\"event\"", "\"type\":\"bogus\""), "unknown");
  ExpectRefused(replace("\"details\":[", "\"details\":[[[[[1]]]],"), "deeper");
  ExpectRefused(replace("\"details\":[", "\"details\":[[\"k\"],"), "pair");
  std::string big = good;
  big.insert(big.size() - 1, std::string(kMaxLineBytes, ' '));
  ExpectRefused(big, "longer than");
}

TEST(AuditLogFormat, ValidateEventNamesTheField) {
  Event e = testing::SampleEvent("stop");
  EXPECT_TRUE(ValidateEvent(e));
  e.action = "Stop!";
  EXPECT_NE(ValidateEvent(e).error().message().find("action"), std::string::npos);
  e = testing::SampleEvent("stop");
  e.vm_uuid = "not-a-uuid";
  EXPECT_NE(ValidateEvent(e).error().message().find("vm_uuid"), std::string::npos);
  e = testing::SampleEvent("stop");
  e.vm_uuid = "";
  EXPECT_TRUE(ValidateEvent(e));
  e.details.emplace_back("Bad Key", "x");
  EXPECT_NE(ValidateEvent(e).error().message().find("detail key"), std::string::npos);
  e = testing::SampleEvent("stop");
  e.details.emplace_back("big", std::string(kMaxDetailValueBytes + 1, 'x'));
  EXPECT_FALSE(ValidateEvent(e));
}

TEST(AuditLogFormat, TimeIsRfc3339UtcWithMilliseconds) {
  EXPECT_EQ(Rfc3339Utc(0, 0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Rfc3339Utc(1700000000, 123456789), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(NowRfc3339Utc().size(), 24u);
}

TEST(AuditLogFormat, GenesisIsTheHashOfItsText) {
  EXPECT_EQ(GenesisPrev(), Sha256Hex("vmm-audit-log/1 genesis"));
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(AuditLogFormat, CheckpointMessageCoversEveryFieldButTheSignature) {
  Record c = WithHeader(RecordType::kCheckpoint, 5, '1', std::string(64, '2'));
  c.alg = "ES256";
  c.key_fpr = std::string(64, '3');
  const std::string base = CheckpointMessage(c);
  Record d = c;
  d.sig = std::string(128, '4');
  EXPECT_EQ(CheckpointMessage(d), base);
  for (auto change : std::vector<void (*)(Record&)>{
           [](Record& r) { r.seq = 6; }, [](Record& r) { r.time[0] = '3'; },
           [](Record& r) { r.session[0] = '0'; }, [](Record& r) { r.prev[0] = '0'; },
           [](Record& r) { r.final = true; }, [](Record& r) { r.key_fpr[0] = '0'; }}) {
    Record e = c;
    change(e);
    EXPECT_NE(CheckpointMessage(e), base);
  }
}

}  // namespace
}  // namespace vmm::audit
