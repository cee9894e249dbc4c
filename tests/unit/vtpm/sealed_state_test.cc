#include "vtpm/state/sealed_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <set>

#include "base/unique_fd.h"
#include "sandbox/roles.h"
#include "tests/unit/common/expect_text.h"
#include "tests/unit/common/temp_dir.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::vtpm {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

static_assert(kStateReadFlags == sandbox::kVtpmStateReadFlags,
              "the vtpm policy allows these exactly");
static_assert(kStateWriteFlags == sandbox::kVtpmStateWriteFlags,
              "the vtpm policy allows these exactly");

const std::string kPerm(kPermanentStateFile);
const std::string kPermTmp = kPerm + std::string(kTempSuffix);

using testing_util::TempDir;

Key TestKey(uint8_t seed) {
  std::array<uint8_t, kKeySize> b;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(seed * 37 + i);
  return Key(b);
}

// Content that names its generation, of a size that changes from one generation to the next.
std::vector<uint8_t> Payload(uint64_t generation) {
  std::vector<uint8_t> p(64 + (generation * 7919) % 20000);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(generation * 31 + i);
  std::memcpy(p.data(), &generation, sizeof(generation));
  return p;
}

std::vector<uint8_t> Bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

class SealedState : public ::testing::Test {
 protected:
  SealedStateStore NewStore() const { return SealedStateStore(dir_.fd(), key_, vm_); }
  // The message of the error Load returns, or "" if it did not fail.
  std::string LoadError(const Key& key, BlobKind kind = BlobKind::kPermanent,
                        uint64_t min_gen = 0) const {
    SealedStateStore store(dir_.fd(), key, vm_);
    auto r = store.Load(kind, {min_gen});
    return r ? "" : r.error().message();
  }
  std::string LoadError() const { return LoadError(key_); }

  TempDir dir_;
  Key key_ = TestKey(1);
  VmId vm_ = VmId::FromName("vm-a");
};

TEST_F(SealedState, RoundTripsBothKindsIndependently) {
  SealedStateStore store = NewStore();
  ASSERT_EQ(*store.Write(BlobKind::kPermanent, Payload(5)), 1u);
  ASSERT_EQ(*store.Write(BlobKind::kVolatile, Payload(9)), 1u);
  auto perm = store.Load(BlobKind::kPermanent);
  auto vol = store.Load(BlobKind::kVolatile);
  ASSERT_TRUE(perm && *perm && vol && *vol);
  EXPECT_EQ(Bytes((*perm)->plaintext.span()), Payload(5));
  EXPECT_EQ(Bytes((*vol)->plaintext.span()), Payload(9));
  ASSERT_EQ(*store.Write(BlobKind::kPermanent, {}), 2u);  // an empty blob is a valid state
  EXPECT_EQ((*store.Load(BlobKind::kPermanent))->plaintext.size(), 0u);
}

TEST_F(SealedState, MissingFileIsFirstBootNotAnError) {
  auto r = NewStore().Load(BlobKind::kPermanent);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->has_value());
}

TEST_F(SealedState, RestartWithNewStoreLoadsAndContinuesTheGeneration) {
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(1)));
  ASSERT_EQ(*NewStore().Write(BlobKind::kPermanent, Payload(2)), 2u);  // checks the file first
  SealedStateStore after_restart = NewStore();
  auto r = after_restart.Load(BlobKind::kPermanent);
  ASSERT_TRUE(r && *r) << (r ? "missing" : r.error().message());
  EXPECT_EQ((*r)->generation, 2u);
  EXPECT_EQ(Bytes((*r)->plaintext.span()), Payload(2));
  EXPECT_EQ(*after_restart.Write(BlobKind::kPermanent, Payload(3)), 3u);
}

TEST_F(SealedState, NoPlaintextOnDiskAndNoTempLeftBehind) {
  const std::string marker = "SECRET-SEED-MATERIAL-0123456789";
  std::vector<uint8_t> blob(marker.begin(), marker.end());
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, blob));
  std::vector<uint8_t> file = dir_.Read(kPerm);
  EXPECT_EQ(std::search(file.begin(), file.end(), blob.begin(), blob.end()), file.end());
  EXPECT_EQ(std::vector<uint8_t>(file.begin(), file.begin() + 8), Bytes(kStateMagic));
  EXPECT_FALSE(dir_.Exists(kPermTmp));
  struct stat st;
  ASSERT_EQ(fstatat(dir_.fd(), kPerm.c_str(), &st, 0), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SealedState, TamperedByteAnywhereIsRefused) {
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(3)));
  const std::vector<uint8_t> good = dir_.Read(kPerm);
  for (size_t i = 0; i < good.size(); ++i) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= static_cast<uint8_t>(1u << (i % 8));
    dir_.Write(kPerm, bad);
    std::string err = LoadError();
    ASSERT_NE(err, "") << "flipped byte " << i << " was accepted";
    const bool nonce_or_body = (i >= 48 && i < 60) || i >= kHeaderSize;
    if (nonce_or_body || (i > 32 && i < 40)) {  // high generation bytes: only the tag notices
      EXPECT_NE(err.find("authentication failed"), std::string::npos) << i << ": " << err;
    }
  }
  dir_.Write(kPerm, good);
  EXPECT_EQ(LoadError(), "");
}

TEST_F(SealedState, TruncatedAtEveryLengthIsRefused) {
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(4)));
  const std::vector<uint8_t> good = dir_.Read(kPerm);
  for (size_t len = 0; len < good.size(); ++len) {
    dir_.Write(kPerm, std::span(good).first(len));
    std::string err = LoadError();
    ASSERT_NE(err.find("truncated"), std::string::npos) << "length " << len << ": '" << err << "'";
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  dir_.Write(kPerm, longer);
  EXPECT_NE(LoadError().find("trailing data"), std::string::npos);
}

TEST_F(SealedState, FileSwappedInFromAnotherVmIsRefused) {
  TempDir other_dir;
  Key other_key = TestKey(2);
  for (const Key* key : {&other_key, &key_}) {  // even if both VMs shared a key
    SealedStateStore other(other_dir.fd(), *key, VmId::FromName("vm-b"));
    ASSERT_TRUE(other.Write(BlobKind::kPermanent, Payload(7)));
    dir_.Write(kPerm, other_dir.Read(kPerm));
    std::string err = LoadError();
    ExpectContainsAll(err, {"belongs to another VM", vm_.ToHex()});
    ASSERT_TRUE(other.Remove(BlobKind::kPermanent));
  }
  // Writing over it is refused too: a bad state is never silently replaced.
  auto w = NewStore().Write(BlobKind::kPermanent, Payload(1));
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message().find("not overwriting"), std::string::npos);
}

TEST_F(SealedState, WrongKeyIsRefused) {
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(1)));
  EXPECT_NE(LoadError(TestKey(9)).find("authentication failed"), std::string::npos);
}

TEST_F(SealedState, StateOfTheOtherKindIsRefused) {
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(1)));
  dir_.Write(std::string(kVolatileStateFile), dir_.Read(kPerm));
  EXPECT_NE(LoadError(key_, BlobKind::kVolatile).find("holds permanent state where volatile"),
            std::string::npos);
}

TEST_F(SealedState, BadMagicVersionAndHugeLengthAreNamed) {
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(1)));
  const std::vector<uint8_t> good = dir_.Read(kPerm);
  auto with = [&](size_t off, uint64_t value, size_t width) {
    std::vector<uint8_t> f = good;
    std::memcpy(f.data() + off, &value, width);
    dir_.Write(kPerm, f);
    return LoadError();
  };
  EXPECT_NE(with(0, 0x5453, 2).find("bad magic"), std::string::npos);
  EXPECT_NE(with(8, 2, 4).find("newer than this build reads"), std::string::npos);
  EXPECT_NE(with(8, 0, 4).find("unknown format version"), std::string::npos);
  EXPECT_NE(with(40, kMaxPlaintext + 1, 8).find("limit"), std::string::npos);
  EXPECT_NE(with(32, 0, 8).find("generation 0"), std::string::npos);
  std::vector<uint8_t> huge(kMaxPlaintext + 1);
  EXPECT_FALSE(NewStore().Write(BlobKind::kVolatile, huge));
}

TEST_F(SealedState, OlderGenerationLoadsUnlessAMinimumIsGiven) {
  SealedStateStore store = NewStore();
  ASSERT_TRUE(store.Write(BlobKind::kPermanent, Payload(1)));
  const std::vector<uint8_t> gen1 = dir_.Read(kPerm);
  ASSERT_TRUE(store.Write(BlobKind::kPermanent, Payload(2)));
  dir_.Write(kPerm, gen1);  // an older copy of this VM's own state
  EXPECT_EQ(LoadError(), "");
  EXPECT_EQ(LoadError(key_, BlobKind::kPermanent, 1), "");
  EXPECT_NE(LoadError(key_, BlobKind::kPermanent, 2).find("rollback: generation 1"),
            std::string::npos);
  auto same_store = store.Load(BlobKind::kPermanent);  // this store wrote generation 2
  ASSERT_FALSE(same_store);
  EXPECT_NE(same_store.error().message().find("rollback"), std::string::npos);
}

TEST_F(SealedState, TempFileIsNeverReadAsState) {
  auto sealed = Seal(key_, {vm_, BlobKind::kPermanent, 50}, Payload(50));
  ASSERT_TRUE(sealed);
  dir_.Write(kPermTmp, *sealed);  // a complete, authentic, newer state under the temp name
  auto r = NewStore().Load(BlobKind::kPermanent);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  ASSERT_EQ(*NewStore().Write(BlobKind::kPermanent, Payload(1)), 1u);
  EXPECT_FALSE(dir_.Exists(kPermTmp));
  dir_.Write(kPermTmp, std::span(*sealed).first(10));  // a half-written temp file
  auto again = NewStore().Load(BlobKind::kPermanent);
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->generation, 1u);
}

TEST_F(SealedState, SymlinksAreNotFollowed) {
  TempDir elsewhere;
  ASSERT_TRUE(SealedStateStore(elsewhere.fd(), key_, vm_).Write(BlobKind::kPermanent, Payload(1)));
  ASSERT_EQ(symlinkat(elsewhere.File(kPerm).c_str(), dir_.fd(), kPerm.c_str()), 0);
  EXPECT_NE(LoadError().find("symbolic link"), std::string::npos);
  ASSERT_EQ(unlinkat(dir_.fd(), kPerm.c_str(), 0), 0);
  ASSERT_EQ(symlinkat(elsewhere.File("victim").c_str(), dir_.fd(), kPermTmp.c_str()), 0);
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(2)));
  EXPECT_FALSE(elsewhere.Exists("victim"));
}

TEST_F(SealedState, RemoveKeepsTheGenerationGoingForward) {
  SealedStateStore store = NewStore();
  ASSERT_EQ(*store.Write(BlobKind::kVolatile, Payload(1)), 1u);
  ASSERT_TRUE(store.Remove(BlobKind::kVolatile));
  ASSERT_TRUE(store.Remove(BlobKind::kVolatile));  // already gone: fine
  EXPECT_FALSE(dir_.Exists(std::string(kVolatileStateFile)));
  EXPECT_EQ(*store.Write(BlobKind::kVolatile, Payload(2)), 2u);
}

TEST_F(SealedState, VmIdFromNameIsStableAndDistinct) {
  EXPECT_EQ(VmId::FromName("vm-a"), vm_);
  EXPECT_NE(VmId::FromName("vm-b"), vm_);
  EXPECT_EQ(vm_.ToHex().size(), 32u);
}

TEST_F(SealedState, KeyFileIsCreatedOnceWithMode0600) {
  EXPECT_EQ(ReadKeyFile(dir_.fd(), "vtpm.key").error().kind(), ErrorKind::kNotFound);
  auto k1 = LoadOrCreateKeyFile(dir_.fd(), "vtpm.key");
  ASSERT_TRUE(k1) << k1.error().ToString();
  auto k2 = LoadOrCreateKeyFile(dir_.fd(), "vtpm.key");
  ASSERT_TRUE(k2);
  EXPECT_EQ(Bytes(k1->bytes()), Bytes(k2->bytes()));
  EXPECT_NE(Bytes(k1->bytes()), Bytes(TestKey(0).bytes()));
  struct stat st;
  ASSERT_EQ(fstatat(dir_.fd(), "vtpm.key", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(kKeySize));
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir_.File("").c_str()), closedir);
  int entries = 0;
  while (dirent* e = readdir(d.get())) entries += e->d_name[0] != '.';
  EXPECT_EQ(entries, 1) << "a temp key file was left behind";
}

TEST_F(SealedState, BadKeyFilesAreRefused) {
  std::vector<uint8_t> short_key(kKeySize - 1, 7);
  dir_.Write("short.key", short_key);
  chmod(dir_.File("short.key").c_str(), 0600);
  EXPECT_NE(LoadOrCreateKeyFile(dir_.fd(), "short.key").error().message().find("exactly 32"),
            std::string::npos);
  std::vector<uint8_t> key(kKeySize, 7);
  dir_.Write("open.key", key);
  chmod(dir_.File("open.key").c_str(), 0640);
  EXPECT_NE(ReadKeyFile(dir_.fd(), "open.key").error().message().find("group or others"),
            std::string::npos);
  EXPECT_FALSE(LoadOrCreateKeyFile(dir_.fd(), "../escape.key"));
  ASSERT_EQ(symlinkat(dir_.File("open.key").c_str(), dir_.fd(), "link.key"), 0);
  EXPECT_NE(ReadKeyFile(dir_.fd(), "link.key").error().message().find("symbolic link"),
            std::string::npos);
}

// The store's own syscalls on the state directory stay inside the vtpm role's seccomp
// filter (sandbox/roles.cc Vtpm): write, replace, load, remove.
TEST_F(SealedState, StoreRunsUnderTheVtpmSeccompPolicy) {
  ASSERT_TRUE(NewStore().Write(BlobKind::kPermanent, Payload(1)));  // so the child replaces one
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (!WarmUpCrypto()) _exit(10);  // after fork: OpenSSL reseeds its DRBG in a new process
    sandbox::testing_util::ApplyRoleFilter("vtpm",
                                           sandbox::testing_util::TestParams(-1, dir_.fd()));
    SealedStateStore store = NewStore();
    auto loaded = store.Load(BlobKind::kPermanent);
    if (!loaded || !*loaded) _exit(11);
    if (!store.Write(BlobKind::kPermanent, Payload(2))) _exit(12);
    if (!store.Write(BlobKind::kVolatile, Payload(3))) _exit(13);
    auto vol = store.Load(BlobKind::kVolatile);
    if (!vol || !*vol || Bytes((*vol)->plaintext.span()) != Payload(3)) _exit(14);
    if (!store.Remove(BlobKind::kVolatile)) _exit(15);
    _exit(0);
  }
  int status = sandbox::testing_util::WaitStatus(child);
  ASSERT_FALSE(WIFSIGNALED(status)) << "killed by signal " << WTERMSIG(status) << " (SIGSYS is "
                                    << SIGSYS << ": a syscall outside the vtpm policy)";
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto r = NewStore().Load(BlobKind::kPermanent);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->generation, 2u);
}

// A child writes generation after generation; the parent SIGKILLs it at random moments.
// After every kill the state must be a complete generation that was written, never a torn
// one, and never older than one seen before.
TEST_F(SealedState, SigkillDuringWriteLeavesOldOrNewGeneration) {
  constexpr int kIterations = 200;
  const unsigned seed = std::random_device()();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  uint64_t last_seen = 0;
  int kills_with_temp_present = 0;
  std::set<uint64_t> seen;
  for (int it = 0; it < kIterations; ++it) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      SealedStateStore store = NewStore();
      for (;;) {
        auto loaded = store.Load(BlobKind::kPermanent);
        if (!loaded) _exit(2);
        uint64_t next = *loaded ? (*loaded)->generation + 1 : 1;
        for (;; ++next) {
          auto written = store.Write(BlobKind::kPermanent, Payload(next));
          if (!written || *written != next) _exit(3);
        }
      }
    }
    // Mostly short (the kill lands inside a write), every fourth long enough for a few
    // complete writes even on a loaded machine, so the generation keeps moving.
    usleep(std::uniform_int_distribution<useconds_t>(0, 4000)(rng) + (it % 4 == 0 ? 15000 : 0));
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited on its own with " << WEXITSTATUS(status);
    kills_with_temp_present += dir_.Exists(kPermTmp);

    auto r = NewStore().Load(BlobKind::kPermanent);
    ASSERT_TRUE(r) << "iteration " << it << ": " << r.error().message();
    if (!*r) {
      ASSERT_EQ(last_seen, 0u) << "state vanished after generation " << last_seen;
      continue;
    }
    const uint64_t gen = (*r)->generation;
    ASSERT_GE(gen, last_seen) << "iteration " << it;
    ASSERT_EQ(Bytes((*r)->plaintext.span()), Payload(gen)) << "iteration " << it;
    last_seen = gen;
    seen.insert(gen);
  }
  std::cout << "[ sigkill  ] " << kIterations << " kills, " << kills_with_temp_present
            << " left a temp file behind, " << seen.size() << " distinct generations, last "
            << last_seen << "\n";
  EXPECT_GT(last_seen, 1u);
}

}  // namespace
}  // namespace vmm::vtpm
