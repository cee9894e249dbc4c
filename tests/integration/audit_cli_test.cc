// `vmm audit verify` as a process: a log written by the manager's AuditTrail, its exit
// statuses (0 intact, 1 tampered, 2 bad input, 3 torn or incomplete) and its JSON report.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/integration/vmm_process.h"
#include "tests/unit/audit/audit_test_util.h"
#include "vmm/manager/audit/audit_trail.h"

namespace vmm::testing {
namespace {

using audit::testing::JoinLines;
using audit::testing::SplitLines;

class VmmAuditVerify : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = audit::testing::MakeKeyFiles(dir_);
    audit::AuditTrail::Options o;
    o.path = log_;
    o.checkpoint_key = keys_.private_pem;
    o.checkpoint_every = 4;
    o.linux_audit = false;
    auto trail = audit::AuditTrail::Open(o);
    ASSERT_TRUE(trail) << trail.error().message();
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE((*trail)->Record(audit::testing::SampleEvent("start", i)));
    }
    ASSERT_TRUE((*trail)->Close());
  }

  ProcessResult Verify(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BinDir() + "/vmm", "audit", "verify"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, 60);
  }

  testing_util::TempDir dir_{"vmm-audit-cli"};
  std::string log_ = dir_.File("audit.jsonl");
  audit::testing::KeyFiles keys_;
};

TEST_F(VmmAuditVerify, IntactLogExitsZero) {
  ProcessResult r = Verify({log_, "--key", keys_.public_pem});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("signatures: 3 verified with key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("result: intact"), std::string::npos) << r.out;
  r = Verify({log_});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("signatures: NOT checked (no --key)"), std::string::npos) << r.out;
}

TEST_F(VmmAuditVerify, TamperedLogExitsOneNamingTheLine) {
  auto lines = SplitLines(dir_.ReadText("audit.jsonl"));
  lines.erase(lines.begin() + 6);
  dir_.WriteText("audit.jsonl", JoinLines(lines));
  ProcessResult r = Verify({log_, "--key", keys_.public_pem});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("tampered: line 7 (seq 8): seq jumps from 6 to 8: records 7..7 are missing"),
            std::string::npos)
      << r.out;

  r = Verify({log_, "--json"});
  EXPECT_EQ(r.exit_code, 1);
  auto j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["status"], "tampered");
  EXPECT_EQ(j["exit_status"], 1);
  EXPECT_EQ(j["signatures_checked"], false);
  bool located = false;
  for (const auto& f : j["findings"]) {
    located = located || (f["kind"] == "tampered" && f["line"] == 7 && f["seq"] == 8);
  }
  EXPECT_TRUE(located) << r.out;
}

TEST_F(VmmAuditVerify, TornTailExitsThree) {
  std::string text = dir_.ReadText("audit.jsonl");
  dir_.WriteText("audit.jsonl", text + text.substr(0, 25));
  ProcessResult r = Verify({log_, "--key", keys_.public_pem});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("torn: the log ends in a torn write"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("tampered:"), std::string::npos) << r.out;
}

TEST_F(VmmAuditVerify, BadInputExitsTwo) {
  EXPECT_EQ(Verify({dir_.File("missing.jsonl")}).exit_code, 2);
  EXPECT_EQ(Verify({log_, "--key", dir_.File("missing.pem")}).exit_code, 2);
  EXPECT_EQ(Verify({log_, "--key", log_}).exit_code, 2);  // not a key
  EXPECT_EQ(Verify({log_, "--anchor", "12"}).exit_code, 2);
  EXPECT_EQ(Verify({}).exit_code, 2);
}

TEST_F(VmmAuditVerify, AnchorCatchesRecordsRemovedFromTheEnd) {
  ProcessResult full = Verify({log_});
  const size_t at =
      full.out.find("anchor (keep it off this host; verify --anchor checks it later): ");
  ASSERT_NE(at, std::string::npos) << full.out;
  const size_t begin = full.out.find(": ", at + 10) + 2;
  const std::string anchor = full.out.substr(begin, full.out.find('\n', begin) - begin);
  auto lines = SplitLines(dir_.ReadText("audit.jsonl"));
  lines.resize(10);
  dir_.WriteText("audit.jsonl", JoinLines(lines));
  EXPECT_EQ(Verify({log_}).exit_code, 3);
  ProcessResult r = Verify({log_, "--anchor", anchor});
  EXPECT_EQ(r.exit_code, 1) << anchor << "\n" << r.out;
  EXPECT_NE(r.out.find("records were removed"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vmm::testing
