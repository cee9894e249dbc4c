// A writer killed at random moments, hundreds of times, must leave a log that verify explains:
// torn writes and sessions without a final checkpoint, never tampering.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "tests/unit/audit/audit_test_util.h"
#include "vmm/manager/audit/audit_trail.h"
#include "vmm/manager/audit/log_verifier.h"

namespace vmm::audit {
namespace {

using testing_util::TempDir;

// The child: open the log and record until killed.
// Writes a byte to `ready` once the log is open.
[[noreturn]] void WriteUntilKilled(const std::string& log, const std::string& key, int ready) {
  AuditTrail::Options o;
  o.path = log;
  o.checkpoint_key = key;
  o.checkpoint_every = 3;
  o.linux_audit = false;
  auto trail = AuditTrail::Open(o);
  if (!trail) _exit(3);
  if (write(ready, "r", 1) != 1) _exit(5);
  for (int i = 0;; ++i) {
    if (!(*trail)->Record(testing::SampleEvent(i % 2 ? "pause" : "resume", i))) _exit(4);
  }
}

TEST(AuditCrash, SigkillAtRandomMomentsIsNeverTampering) {
  TempDir dir("vmm-audit-crash");
  const testing::KeyFiles keys = testing::MakeKeyFiles(dir);
  const std::string log = dir.File("audit.jsonl");
  std::mt19937 rng(std::random_device{}());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(12);
  int kills = 0;
  int cuts = 0;
  while (kills < 400 && std::chrono::steady_clock::now() < deadline) {
    int ready[2];
    ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) WriteUntilKilled(log, keys.private_pem, ready[1]);
    close(ready[1]);
    // Every other round waits for the log to be open (a loaded machine starts children
    // slowly), so that most kills land in the record loop; the others may land in Open.
    char byte;
    const bool opened = kills % 2 != 0 || read(ready[0], &byte, 1) == 1;
    close(ready[0]);
    // Then 0 to 15 ms more.
    const struct timespec pause = {0, static_cast<long>(rng() % 15'000'000)};
    nanosleep(&pause, nullptr);
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(opened) << "the writer did not open the log";
    ASSERT_TRUE(WIFSIGNALED(status))
        << "the writer failed with exit status " << WEXITSTATUS(status);
    ++kills;
    // A SIGKILL does not cut a write() to a file; a power loss or a full disk does. Every 10th
    // round, cut the last line short as they would (or leave zeros where it was).
    struct stat st {};
    if (kills % 10 == 0 && stat(log.c_str(), &st) == 0 && st.st_size > 2) {
      const std::string text = dir.ReadText("audit.jsonl");
      const size_t last_start = text.rfind('\n', text.size() - 2) + 1;
      const size_t last_len = text.size() - 1 - last_start;
      if (last_len > 1) {
        const off_t cut = static_cast<off_t>(last_start + 1 + rng() % (last_len - 1));
        ASSERT_EQ(truncate(log.c_str(), cut), 0);
        if (rng() % 2) {
          ASSERT_EQ(truncate(log.c_str(), cut + 100), 0);  // zeros past the cut
        }
        ++cuts;
      }
    }
  }
  auto key = CheckpointVerifier::Load(keys.public_pem);
  ASSERT_TRUE(key);
  VerifyOptions options;
  options.key = &*key;
  const VerifyReport r = VerifyLogText(dir.ReadText("audit.jsonl"), options);
  std::string dump;
  int torn = 0;
  int incomplete = 0;
  for (const Finding& f : r.findings) {
    torn += f.kind == FindingKind::kTorn;
    incomplete += f.kind == FindingKind::kIncomplete;
    if (f.kind == FindingKind::kTampered) dump += f.message + "\n";
  }
  EXPECT_NE(r.status(), VerifyStatus::kTampered) << dump;
  EXPECT_GE(kills, 200);
  EXPECT_GT(r.records, static_cast<uint64_t>(kills));
  EXPECT_GE(incomplete, 1);
  if (cuts > 0) {
    EXPECT_GE(torn, 1);
  }
  std::printf("%d kills, %d torn cuts: %llu records, %llu sessions, %d torn, %d incomplete\n",
              kills, cuts, static_cast<unsigned long long>(r.records),
              static_cast<unsigned long long>(r.sessions), torn, incomplete);

  // A last clean session after all of that still verifies without tampering.
  AuditTrail::Options o;
  o.path = log;
  o.checkpoint_key = keys.private_pem;
  o.linux_audit = false;
  auto trail = AuditTrail::Open(o);
  ASSERT_TRUE(trail) << trail.error().message();
  ASSERT_TRUE((*trail)->Record(testing::SampleEvent("stop")));
  ASSERT_TRUE((*trail)->Close());
  EXPECT_NE(VerifyLogText(dir.ReadText("audit.jsonl"), options).status(), VerifyStatus::kTampered);
}

}  // namespace
}  // namespace vmm::audit
