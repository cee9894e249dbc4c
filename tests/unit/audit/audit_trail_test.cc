#include "vmm/manager/audit/audit_trail.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/audit/audit_test_util.h"
#include "vmm/manager/audit/log_format.h"
#include "vmm/manager/audit/log_verifier.h"

namespace vmm::audit {
namespace {

using testing::JoinLines;
using testing::KeyFiles;
using testing::MakeKeyFiles;
using testing::SampleEvent;
using testing::SplitLines;
using testing_util::TempDir;

// Without the Linux audit records: these tests are about the log.
AuditTrail::Options Opts(const std::string& path, const std::string& key = "",
                         uint32_t every = 64) {
  AuditTrail::Options o;
  o.path = path;
  o.checkpoint_key = key;
  o.checkpoint_every = every;
  o.linux_audit = false;
  return o;
}

class AuditTrailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = MakeKeyFiles(dir_);
    auto key = CheckpointVerifier::Load(keys_.public_pem);
    ASSERT_TRUE(key) << key.error().message();
    key_.emplace(std::move(key).value());
  }

  // open, 10 events with a checkpoint after every 4, the final checkpoint: 14 lines.
  std::vector<std::string> WriteLog() {
    auto trail = AuditTrail::Open(Opts(log_, keys_.private_pem, 4));
    EXPECT_TRUE(trail) << trail.error().message();
    for (int i = 0; i < 10; ++i) EXPECT_TRUE((*trail)->Record(SampleEvent("start", i)));
    EXPECT_TRUE((*trail)->Close());
    return SplitLines(dir_.ReadText("audit.jsonl"));
  }

  VerifyReport Verify(const std::string& text, bool with_key = true) {
    VerifyOptions options;
    if (with_key) options.key = &*key_;
    return VerifyLogText(text, options);
  }

  // The findings of `kind`, as "line N: message" for failure output.
  static std::string Dump(const VerifyReport& r) {
    std::string s;
    for (const Finding& f : r.findings) {
      s += std::string(FindingKindName(f.kind)) + " @" + std::to_string(f.line) + ": " + f.message +
           "\n";
    }
    return s;
  }

  static const Finding* FirstTampered(const VerifyReport& r) {
    for (const Finding& f : r.findings) {
      if (f.kind == FindingKind::kTampered) return &f;
    }
    return nullptr;
  }

  TempDir dir_{"vmm-audit"};
  std::string log_ = dir_.File("audit.jsonl");
  KeyFiles keys_;
  std::optional<CheckpointVerifier> key_;
};

TEST_F(AuditTrailTest, RealLogVerifiesWithEverySignature) {
  const auto lines = WriteLog();
  ASSERT_EQ(lines.size(), 14u);
  const VerifyReport r = Verify(JoinLines(lines));
  EXPECT_EQ(r.status(), VerifyStatus::kIntact) << Dump(r);
  EXPECT_EQ(r.records, 14u);
  EXPECT_EQ(r.sessions, 1u);
  EXPECT_EQ(r.checkpoints, 3u);
  EXPECT_EQ(r.signatures_verified, 3u);
  EXPECT_EQ(r.last_seq, 14u);
  auto last = ParseRecord(lines.back());
  ASSERT_TRUE(last);
  EXPECT_EQ(last->type, RecordType::kCheckpoint);
  EXPECT_TRUE(last->final);
  EXPECT_EQ(last->key_fpr, key_->fingerprint());
  // Without a key the chain is checked and the report says the signatures were not.
  const VerifyReport unkeyed = Verify(JoinLines(lines), /*with_key=*/false);
  EXPECT_EQ(unkeyed.status(), VerifyStatus::kIntact);
  EXPECT_FALSE(unkeyed.signatures_checked);
  EXPECT_NE(Dump(unkeyed).find("NOT checked"), std::string::npos);
}

TEST_F(AuditTrailTest, EditedFieldIsLocated) {
  auto lines = WriteLog();
  // Line 4 is an event (seq 4): change its VM's name.
  const size_t at = lines[3].find("web-2");
  ASSERT_NE(at, std::string::npos) << lines[3];
  lines[3].replace(at, 5, "web-9");
  const VerifyReport r = Verify(JoinLines(lines));
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  const Finding* f = FirstTampered(r);
  EXPECT_EQ(f->line, 5u);
  EXPECT_NE(f->message.find("line 4 (seq 4) was altered"), std::string::npos) << f->message;
}

TEST_F(AuditTrailTest, RemovedLineIsLocated) {
  auto lines = WriteLog();
  lines.erase(lines.begin() + 4);  // seq 5
  const VerifyReport r = Verify(JoinLines(lines));
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  const Finding* f = FirstTampered(r);
  EXPECT_EQ(f->line, 5u);
  EXPECT_EQ(f->seq, 6u);
  EXPECT_NE(f->message.find("records 5..5 are missing"), std::string::npos) << f->message;
}

TEST_F(AuditTrailTest, SwappedLinesAreLocated) {
  auto lines = WriteLog();
  std::swap(lines[2], lines[3]);  // seq 3 and 4
  const VerifyReport r = Verify(JoinLines(lines));
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  const Finding* f = FirstTampered(r);
  EXPECT_EQ(f->line, 3u);
  EXPECT_EQ(f->seq, 4u);
  EXPECT_NE(Dump(r).find("line 4 (seq 3): seq 3 follows seq 4"), std::string::npos) << Dump(r);
}

TEST_F(AuditTrailTest, InsertedForgedLineIsLocated) {
  auto lines = WriteLog();
  // A well-formed forgery that chains to the line before it and reuses the session.
  auto before = ParseRecord(lines[5]);
  ASSERT_TRUE(before);
  Record forged;
  forged.type = RecordType::kEvent;
  forged.seq = before->seq + 1;
  forged.time = before->time;
  forged.session = before->session;
  forged.prev = LineHash(lines[5]);
  forged.event = SampleEvent("stop", 99);
  lines.insert(lines.begin() + 6, SerializeRecord(forged));
  const VerifyReport r = Verify(JoinLines(lines));
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  const Finding* f = FirstTampered(r);
  EXPECT_EQ(f->line, 8u);  // the genuine record after the forgery no longer fits
  EXPECT_NE(f->message.find("inserted"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("line 7"), std::string::npos) << f->message;
}

TEST_F(AuditTrailTest, TruncationAtARecordBoundaryIsReportedAndTheAnchorCatchesIt) {
  auto lines = WriteLog();
  const VerifyReport full = Verify(JoinLines(lines));
  lines.resize(11);  // drop the last events and the final checkpoint
  const VerifyReport r = Verify(JoinLines(lines));
  EXPECT_EQ(r.status(), VerifyStatus::kIncomplete) << Dump(r);
  EXPECT_NE(Dump(r).find("no final checkpoint"), std::string::npos) << Dump(r);
  EXPECT_NE(Dump(r).find("truncated after its last record at line 11 (seq 11)"), std::string::npos)
      << Dump(r);
  // With the anchor printed for the full log (and kept elsewhere), it is tampering.
  auto anchor = ParseAnchor(full.last_checkpoint_anchor);
  ASSERT_TRUE(anchor) << full.last_checkpoint_anchor;
  VerifyOptions options;
  options.key = &*key_;
  options.anchor = *anchor;
  const VerifyReport anchored = VerifyLogText(JoinLines(lines), options);
  EXPECT_EQ(anchored.status(), VerifyStatus::kTampered);
  EXPECT_NE(Dump(anchored).find("records were removed"), std::string::npos) << Dump(anchored);
  std::filesystem::remove(log_);
  EXPECT_EQ(VerifyLogText(JoinLines(WriteLog()), options).status(), VerifyStatus::kTampered)
      << "another log's anchor must not match";
}

TEST_F(AuditTrailTest, BadSignaturesAreLocated) {
  const auto lines = WriteLog();
  // Line 6 is the first checkpoint (after open + 4 events).
  ASSERT_NE(lines[5].find("\"type\":\"checkpoint\""), std::string::npos);
  auto flipped = lines;
  const size_t sig = flipped[5].find("\"sig\":\"") + 7;
  flipped[5][sig] = flipped[5][sig] == '0' ? '1' : '0';
  VerifyReport r = Verify(JoinLines(flipped));
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  EXPECT_NE(Dump(r).find("line 6 (seq 6): the checkpoint's signature does not verify"),
            std::string::npos)
      << Dump(r);

  // The last checkpoint's time changed: nothing chains after it, the signature catches it.
  auto edited = lines;
  const size_t t = edited.back().find("\"time\":\"") + 8;
  edited.back()[t] = edited.back()[t] == '1' ? '2' : '1';
  r = Verify(JoinLines(edited));
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  EXPECT_NE(Dump(r).find("line 14 (seq 14): the checkpoint's signature does not verify"),
            std::string::npos)
      << Dump(r);

  // Another operator's key.
  const KeyFiles other = MakeKeyFiles(dir_, "other");
  auto other_key = CheckpointVerifier::Load(other.public_pem);
  ASSERT_TRUE(other_key);
  VerifyOptions other_options;
  other_options.key = &*other_key;
  r = VerifyLogText(JoinLines(lines), other_options);
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  EXPECT_NE(Dump(r).find("signed with another key"), std::string::npos) << Dump(r);
}

TEST_F(AuditTrailTest, UnsignedCheckpointsFailWithAKey) {
  auto trail = AuditTrail::Open(Opts(log_, "", 2));
  ASSERT_TRUE(trail);
  ASSERT_TRUE((*trail)->Record(SampleEvent("pause")));
  ASSERT_TRUE((*trail)->Close());
  const std::string text = dir_.ReadText("audit.jsonl");
  EXPECT_EQ(Verify(text, /*with_key=*/false).status(), VerifyStatus::kIntact);
  const VerifyReport r = Verify(text);
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  EXPECT_NE(Dump(r).find("not signed, but --key was given"), std::string::npos) << Dump(r);
}

TEST_F(AuditTrailTest, ReopenContinuesTheChain) {
  WriteLog();
  auto trail = AuditTrail::Open(Opts(log_, keys_.private_pem, 64));
  ASSERT_TRUE(trail);
  EXPECT_TRUE((*trail)->torn_tail_report().empty());
  ASSERT_TRUE((*trail)->Record(SampleEvent("stop")));
  ASSERT_TRUE((*trail)->Close());
  const VerifyReport r = Verify(dir_.ReadText("audit.jsonl"));
  EXPECT_EQ(r.status(), VerifyStatus::kIntact) << Dump(r);
  EXPECT_EQ(r.sessions, 2u);
  EXPECT_EQ(r.last_seq, 17u);
}

TEST_F(AuditTrailTest, TwoWritersOnOneLogKeepOneChain) {
  auto a = AuditTrail::Open(Opts(log_, keys_.private_pem, 3));
  auto b = AuditTrail::Open(Opts(log_, "", 2));
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE((*a)->Record(SampleEvent("info", i)));
    ASSERT_TRUE((*b)->Record(SampleEvent("attest", i)));
  }
  ASSERT_TRUE((*a)->Close());
  ASSERT_TRUE((*b)->Close());
  const VerifyReport r = Verify(dir_.ReadText("audit.jsonl"), /*with_key=*/false);
  EXPECT_EQ(r.status(), VerifyStatus::kIntact) << Dump(r);
  EXPECT_EQ(r.sessions, 2u);
}

TEST_F(AuditTrailTest, TornTailIsReportedThenRecordedAtOpen) {
  auto lines = WriteLog();
  std::string text = JoinLines(lines);
  const std::string torn = lines[4].substr(0, 40);  // a record cut short
  text += torn;
  dir_.WriteText("audit.jsonl", text);
  chmod(log_.c_str(), 0600);

  VerifyReport r = Verify(text);
  EXPECT_EQ(r.status(), VerifyStatus::kIncomplete) << Dump(r);
  EXPECT_NE(Dump(r).find("ends in a torn write"), std::string::npos) << Dump(r);
  EXPECT_NE(Dump(r).find("line 15"), std::string::npos) << Dump(r);

  auto trail = AuditTrail::Open(Opts(log_, keys_.private_pem, 64));
  ASSERT_TRUE(trail) << trail.error().message();
  EXPECT_NE((*trail)->torn_tail_report().find("40 bytes"), std::string::npos)
      << (*trail)->torn_tail_report();
  ASSERT_TRUE((*trail)->Close());
  const std::string after = dir_.ReadText("audit.jsonl");
  EXPECT_EQ(after.substr(0, text.size()), text) << "the torn bytes must be kept";
  r = Verify(after);
  EXPECT_EQ(r.status(), VerifyStatus::kIncomplete) << Dump(r);
  EXPECT_EQ(FirstTampered(r), nullptr) << Dump(r);
  EXPECT_NE(Dump(r).find("lines 15-15 (40 bytes) are a write cut short by a crash, recorded by "
                         "the torn-tail record at line 16 (seq 15)"),
            std::string::npos)
      << Dump(r);
}

TEST_F(AuditTrailTest, GarbageInTheMiddleIsTampering) {
  auto lines = WriteLog();
  lines.insert(lines.begin() + 3, "{\"v\":1,\"se");
  VerifyReport r = Verify(JoinLines(lines));
  ASSERT_EQ(r.status(), VerifyStatus::kTampered);
  EXPECT_EQ(FirstTampered(r)->line, 4u);
  EXPECT_NE(FirstTampered(r)->message.find("no torn-tail record"), std::string::npos);
}

TEST_F(AuditTrailTest, TornTailRecordMustNameTheLinesBeforeIt) {
  WriteLog();
  std::string text = dir_.ReadText("audit.jsonl") + "partial";
  dir_.WriteText("audit.jsonl", text);
  chmod(log_.c_str(), 0600);
  ASSERT_TRUE(AuditTrail::Open(Opts(log_, "", 64)));
  auto lines = SplitLines(dir_.ReadText("audit.jsonl"));
  ASSERT_EQ(lines[14], "partial");
  lines[14] = "partiaL";  // the torn bytes changed after the writer recorded them
  const VerifyReport r = Verify(JoinLines(lines), /*with_key=*/false);
  ASSERT_EQ(r.status(), VerifyStatus::kTampered) << Dump(r);
  EXPECT_NE(Dump(r).find("names lines that are not the ones before it"), std::string::npos);
}

TEST_F(AuditTrailTest, LogIsAppendOnlyCloexecAndPrivate) {
  auto trail = AuditTrail::Open(Opts(log_, "", 64));
  ASSERT_TRUE(trail);
  struct stat st {};
  ASSERT_EQ(stat(log_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  int found = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec) != log_) continue;
    const int fd = std::stoi(entry.path().filename().string());
    EXPECT_NE(fcntl(fd, F_GETFL) & O_APPEND, 0);
    EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    ++found;
  }
  EXPECT_EQ(found, 1);
}

TEST_F(AuditTrailTest, RefusesSymlinksAndWritableByOthers) {
  ASSERT_EQ(symlink(dir_.File("target").c_str(), dir_.File("link").c_str()), 0);
  auto via_link = AuditTrail::Open(Opts(dir_.File("link"), "", 64));
  ASSERT_FALSE(via_link);
  EXPECT_NE(via_link.error().message().find("symlink"), std::string::npos);
  EXPECT_FALSE(dir_.Exists("target"));

  dir_.WriteText("shared.jsonl", "");
  chmod(dir_.File("shared.jsonl").c_str(), 0666);
  auto shared = AuditTrail::Open(Opts(dir_.File("shared.jsonl"), "", 64));
  ASSERT_FALSE(shared);
  EXPECT_NE(shared.error().message().find("chmod 600"), std::string::npos);
}

TEST_F(AuditTrailTest, RefusesBadEventsWithoutWriting) {
  auto trail = AuditTrail::Open(Opts(log_, "", 64));
  ASSERT_TRUE(trail);
  const std::string before = dir_.ReadText("audit.jsonl");
  Event bad = SampleEvent("start");
  bad.action = "Start";
  EXPECT_FALSE((*trail)->Record(bad));
  Event huge = SampleEvent("start");
  for (int i = 0; i < 5; ++i) huge.details.emplace_back("blob", std::string(4000, 'x'));
  auto r = (*trail)->Record(huge);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("bytes as a record"), std::string::npos);
  EXPECT_EQ(dir_.ReadText("audit.jsonl"), before);
}

TEST_F(AuditTrailTest, ForkedChildCannotWrite) {
  auto trail = AuditTrail::Open(Opts(log_, "", 64));
  ASSERT_TRUE(trail);
  EXPECT_EXIT(
      {
        const bool wrote = static_cast<bool>((*trail)->Record(SampleEvent("stop")));
        const bool closed = static_cast<bool>((*trail)->Close());
        _exit(!wrote && !closed ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  ASSERT_TRUE((*trail)->Close());
  const VerifyReport r = Verify(dir_.ReadText("audit.jsonl"), /*with_key=*/false);
  EXPECT_EQ(r.status(), VerifyStatus::kIntact) << Dump(r);
}

TEST_F(AuditTrailTest, RefusesAKeyOthersCanRead) {
  chmod(keys_.private_pem.c_str(), 0644);
  auto trail = AuditTrail::Open(Opts(log_, keys_.private_pem, 64));
  ASSERT_FALSE(trail);
  EXPECT_NE(trail.error().message().find("chmod 600"), std::string::npos);
}

}  // namespace
}  // namespace vmm::audit
