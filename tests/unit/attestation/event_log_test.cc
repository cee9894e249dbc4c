// attestation/event_log.h: build -> parse round trips, replay against PCR values computed here
// with OpenSSL directly, StartupLocality, SHA-1 logs, free space, limits, every malformed case
// (with its byte offset in the message), the renderings, and the real OVMF logs of
// tests/data/eventlogs (made by scripts/make-eventlog-samples.sh).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attestation/event_log.h"

namespace vmm::attestation {
namespace {

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------- helpers
const EVP_MD* Md(uint16_t alg) {
  switch (alg) {
    case kAlgSha1:
      return EVP_sha1();
    case kAlgSha256:
      return EVP_sha256();
    case kAlgSha384:
      return EVP_sha384();
    case kAlgSha512:
      return EVP_sha512();
    default:
      return EVP_get_digestbyname("SM3");
  }
}

Bytes H(uint16_t alg, std::span<const uint8_t> data) {
  uint8_t out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), out, &len, Md(alg), nullptr), 1);
  return Bytes(out, out + len);
}

Bytes Extend(uint16_t alg, const Bytes& pcr, const Bytes& digest) {
  Bytes cat = pcr;
  cat.insert(cat.end(), digest.begin(), digest.end());
  return H(alg, cat);
}

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

void Put32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void Set32(Bytes& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
void Set16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v);
  b[off + 1] = static_cast<uint8_t>(v >> 8);
}

std::string ErrorOf(std::span<const uint8_t> log, const ParseLimits& limits = {}) {
  auto r = ParseEventLog(log, limits);
  if (r.has_value()) return "(parsed)";
  return r.error().message();
}

const PcrBank* BankOf(const std::vector<PcrBank>& banks, uint16_t alg) {
  for (const PcrBank& b : banks) {
    if (b.alg == alg) return &b;
  }
  return nullptr;
}

// With the default banks (SHA-256, SHA-384) and no vendor info: the header is 32 + 37 bytes,
// and a record's header 12 + (2 + 32) + (2 + 48) bytes before its event size.
constexpr size_t kHeaderSize = 69;
constexpr size_t kRecordPrefix = 96;

// ---------------------------------------------------------------- builder and round trip
TEST(EventLogBuilder, HeaderListsTheBanksWithTheirDigestSizes) {
  EventLogBuilder b;
  const Bytes& log = b.bytes();
  ASSERT_EQ(log.size(), kHeaderSize);
  EXPECT_EQ(log[4], kEvNoAction);
  EXPECT_EQ(std::memcmp(log.data() + 32, "Spec ID Event03\0", 16), 0);
  EXPECT_EQ(log[32 + 21], 2);  // specVersionMajor
  EXPECT_EQ(log[32 + 23], 2);  // uintnSize
  EXPECT_EQ(log[32 + 24], 2);  // numberOfAlgorithms
  EXPECT_EQ(log[32 + 28], 0x0B);
  EXPECT_EQ(log[32 + 30], 32);
  EXPECT_EQ(log[32 + 32], 0x0C);
  EXPECT_EQ(log[32 + 34], 48);
  EXPECT_EQ(log[32 + 36], 0);  // vendorInfoSize
}

TEST(EventLogBuilder, RoundTripThroughTheParser) {
  EventLogBuilder b;
  ASSERT_TRUE(b.AddStartupLocality(3));
  const Bytes version = {'1', 0, '.', 0, '0', 0, 0, 0};
  ASSERT_TRUE(b.AddSCrtmVersion(version));
  ASSERT_TRUE(b.AddPlatformConfigFlags(Bytes{1, 2, 3}));
  Bytes kernel(3 * (1u << 20) + 12345);  // several hashing chunks
  for (size_t i = 0; i < kernel.size(); ++i) kernel[i] = static_cast<uint8_t>(i * 7 + (i >> 13));
  ASSERT_TRUE(b.Measure(4, kEvEfiBootServicesApplication, B("kernel"), kernel));
  ASSERT_TRUE(b.AddIpl(8, "console=ttyS0 root=/dev/vda"));
  std::vector<Digest> pre = {{kAlgSha384, Bytes(48, 0xAB)}, {kAlgSha256, Bytes(32, 0xCD)}};
  ASSERT_TRUE(b.Record(9, kEvEventTag, B("initrd"), pre));
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) ASSERT_TRUE(b.AddSeparator(pcr));
  EXPECT_EQ(b.event_count(), 14u);

  auto parsed = ParseEventLog(b.bytes());
  ASSERT_TRUE(parsed) << parsed.error().message();
  const EventLog& log = *parsed;
  EXPECT_EQ(log.format, LogFormat::kCryptoAgile);
  ASSERT_TRUE(log.spec_id);
  EXPECT_EQ(log.spec_id->algorithms,
            (std::vector<AlgorithmSize>{{kAlgSha256, 32}, {kAlgSha384, 48}}));
  EXPECT_EQ(log.startup_locality, 3);
  EXPECT_EQ(log.used_bytes, b.bytes().size());
  EXPECT_EQ(log.free_bytes, 0u);
  ASSERT_EQ(log.events.size(), 15u);  // the header and 14 records

  const Event& loc = log.events[1];
  EXPECT_EQ(loc.type, kEvNoAction);
  EXPECT_EQ(loc.offset, kHeaderSize);
  EXPECT_EQ(loc.data, B(std::string_view("StartupLocality\0\3", 17)));
  EXPECT_EQ(loc.digests[0].bytes, Bytes(32, 0));

  const Event& crtm = log.events[2];
  EXPECT_EQ(crtm.pcr, 0u);
  EXPECT_EQ(crtm.type, kEvSCrtmVersion);
  EXPECT_EQ(crtm.data, version);
  EXPECT_EQ(crtm.digests[0], (Digest{kAlgSha256, H(kAlgSha256, version)}));
  EXPECT_EQ(crtm.digests[1], (Digest{kAlgSha384, H(kAlgSha384, version)}));

  EXPECT_EQ(log.events[3].type, kEvPlatformConfigFlags);
  EXPECT_EQ(log.events[3].pcr, 1u);
  const Event& k = log.events[4];
  EXPECT_EQ(k.pcr, 4u);
  EXPECT_EQ(k.data, B("kernel"));
  EXPECT_EQ(k.digests[0].bytes, H(kAlgSha256, kernel));
  EXPECT_EQ(k.digests[1].bytes, H(kAlgSha384, kernel));
  EXPECT_EQ(log.events[5].type, kEvIpl);
  EXPECT_EQ(log.events[5].digests[0].bytes, H(kAlgSha256, B("console=ttyS0 root=/dev/vda")));
  // Precomputed digests are written in the banks' order.
  EXPECT_EQ(log.events[6].digests[0], pre[1]);
  EXPECT_EQ(log.events[6].digests[1], pre[0]);
  const Event& sep = log.events[14];
  EXPECT_EQ(sep.type, kEvSeparator);
  EXPECT_EQ(sep.pcr, 7u);
  EXPECT_EQ(sep.data, Bytes(4, 0));
  EXPECT_EQ(sep.digests[0].bytes, H(kAlgSha256, Bytes(4, 0)));
}

TEST(EventLogBuilder, HashAllMatchesOneShotDigestsAcrossChunks) {
  Bytes data(2 * (1u << 20) + 1);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i ^ (i >> 9));
  const uint16_t algs[] = {kAlgSha1, kAlgSha256, kAlgSha384, kAlgSha512};
  auto d = HashAll(algs, data);
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_EQ(d->size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*d)[i].alg, algs[i]);
    EXPECT_EQ((*d)[i].bytes, H(algs[i], data));
  }
}

TEST(EventLogBuilder, RejectsBadBanksAndMisuse) {
  EXPECT_FALSE(EventLogBuilder::Create({}));
  EXPECT_FALSE(EventLogBuilder::Create({kAlgSha256, kAlgSha256}));
  EXPECT_FALSE(EventLogBuilder::Create({0x0099}));
  EXPECT_FALSE(EventLogBuilder::Create({kAlgSha256}, Bytes(256, 1)));
  EXPECT_FALSE(EventLogBuilder::Create({kAlgSha256}, {}, 40));  // the header does not fit

  EventLogBuilder b;
  EXPECT_FALSE(b.AddSeparator(24));
  EXPECT_FALSE(b.Record(0, kEvPostCode, {}, std::vector<Digest>{{kAlgSha256, Bytes(32)}}));
  EXPECT_FALSE(b.Record(0, kEvPostCode, {},
                        std::vector<Digest>{{kAlgSha256, Bytes(31)}, {kAlgSha384, Bytes(48)}}));
  EXPECT_FALSE(b.AddStartupLocality(2));
  ASSERT_TRUE(b.AddSeparator(0));
  auto late = b.AddStartupLocality(3);
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message().find("after PCR 0"), std::string::npos);

  auto small = EventLogBuilder::Create({kAlgSha256}, {}, 200);
  ASSERT_TRUE(small);
  EXPECT_TRUE(small->AddSeparator(0));
  auto full = small->Measure(1, kEvPostCode, Bytes(200), Bytes(1));
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message().find("does not fit"), std::string::npos);
}

TEST(EventLogBuilder, AllFiveAlgorithmsAndVendorInfo) {
  std::vector<uint16_t> banks = {kAlgSha1, kAlgSha256, kAlgSha384, kAlgSha512};
  if (AlgSupported(kAlgSm3_256)) banks.push_back(kAlgSm3_256);
  const Bytes vendor = B("vendor-xyz");
  auto b = EventLogBuilder::Create(banks, vendor);
  ASSERT_TRUE(b) << b.error().message();
  ASSERT_TRUE(b->AddSeparator(7));
  auto log = ParseEventLog(b->bytes());
  ASSERT_TRUE(log) << log.error().message();
  EXPECT_EQ(log->spec_id->vendor_info, vendor);
  ASSERT_EQ(log->spec_id->algorithms.size(), banks.size());
  auto replay = ReplayEventLog(*log);
  ASSERT_TRUE(replay);
  ASSERT_EQ(replay->size(), banks.size());
  for (uint16_t alg : banks) {
    const PcrBank* bank = BankOf(*replay, alg);
    ASSERT_NE(bank, nullptr) << AlgName(alg);
    size_t n = *DigestSizeOf(alg);
    EXPECT_EQ(bank->pcrs[7], Extend(alg, Bytes(n, 0), H(alg, Bytes(4, 0)))) << AlgName(alg);
  }
}

// ---------------------------------------------------------------- replay
TEST(EventLogReplay, MatchesExtendsComputedWithOpenSsl) {
  EventLogBuilder b;
  ASSERT_TRUE(b.Measure(4, kEvEfiBootServicesApplication, {}, B("kernel image")));
  ASSERT_TRUE(b.AddIpl(8, "cmdline"));
  ASSERT_TRUE(b.Measure(4, kEvEfiBootServicesApplication, {}, B("second")));
  ASSERT_TRUE(b.AddSeparator(4));
  ASSERT_TRUE(b.Measure(17, kEvPostCode, {}, B("drtm")));
  // Not extended:
  ASSERT_TRUE(
      b.Record(5, kEvNoAction, B("note"),
               std::vector<Digest>{{kAlgSha256, Bytes(32, 1)}, {kAlgSha384, Bytes(48, 1)}}));
  auto log = ParseEventLog(b.bytes());
  ASSERT_TRUE(log) << log.error().message();
  auto replay = ReplayEventLog(*log);
  ASSERT_TRUE(replay) << replay.error().message();
  ASSERT_EQ(replay->size(), 2u);
  for (uint16_t alg : {kAlgSha256, kAlgSha384}) {
    const PcrBank* bank = BankOf(*replay, alg);
    ASSERT_NE(bank, nullptr);
    size_t n = *DigestSizeOf(alg);
    Bytes p4(n, 0);
    p4 = Extend(alg, p4, H(alg, B("kernel image")));
    p4 = Extend(alg, p4, H(alg, B("second")));
    p4 = Extend(alg, p4, H(alg, Bytes(4, 0)));
    EXPECT_EQ(bank->pcrs[4], p4);
    EXPECT_EQ(bank->pcrs[8], Extend(alg, Bytes(n, 0), H(alg, B("cmdline"))));
    EXPECT_EQ(bank->pcrs[17], Extend(alg, Bytes(n, 0xFF), H(alg, B("drtm"))));
    EXPECT_EQ(bank->pcrs[0], Bytes(n, 0));
    EXPECT_EQ(bank->pcrs[5], Bytes(n, 0));
    EXPECT_EQ(bank->pcrs[18], Bytes(n, 0xFF));
    EXPECT_EQ(bank->pcrs[23], Bytes(n, 0));
  }
}

TEST(EventLogReplay, StartupLocalitySetsTheInitialValueOfPcr0) {
  for (uint8_t locality : {0, 3, 4}) {
    EventLogBuilder b;
    ASSERT_TRUE(b.AddStartupLocality(locality));
    ASSERT_TRUE(b.AddSeparator(0));
    ASSERT_TRUE(b.AddSeparator(1));
    auto log = ParseEventLog(b.bytes());
    ASSERT_TRUE(log);
    EXPECT_EQ(log->startup_locality, locality);
    auto replay = ReplayEventLog(*log);
    ASSERT_TRUE(replay);
    for (const PcrBank& bank : *replay) {
      size_t n = bank.pcrs[0].size();
      Bytes start(n, 0);
      start.back() = locality;
      EXPECT_EQ(bank.pcrs[0], Extend(bank.alg, start, H(bank.alg, Bytes(4, 0))));
      EXPECT_EQ(bank.pcrs[1], Extend(bank.alg, Bytes(n, 0), H(bank.alg, Bytes(4, 0))));
    }
  }
}

// ---------------------------------------------------------------- SHA-1 logs
Bytes Sha1Record(uint32_t pcr, uint32_t type, const Bytes& digest, const Bytes& data) {
  Bytes r;
  Put32(r, pcr);
  Put32(r, type);
  r.insert(r.end(), digest.begin(), digest.end());
  Put32(r, static_cast<uint32_t>(data.size()));
  r.insert(r.end(), data.begin(), data.end());
  return r;
}

TEST(EventLogParse, Sha1OnlyLog) {
  Bytes log;
  for (const Bytes& r :
       {Sha1Record(0, kEvSCrtmVersion, H(kAlgSha1, B("v1")), B("v1")),
        Sha1Record(0, kEvNoAction, Bytes(20, 0), B(std::string_view("StartupLocality\0\3", 17))),
        Sha1Record(4, kEvIpl, H(kAlgSha1, B("grub")), B("grub")),
        Sha1Record(0, kEvSeparator, H(kAlgSha1, Bytes(4)), Bytes(4))}) {
    log.insert(log.end(), r.begin(), r.end());
  }
  auto parsed = ParseEventLog(log);
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->format, LogFormat::kSha1);
  EXPECT_FALSE(parsed->spec_id);
  ASSERT_EQ(parsed->events.size(), 4u);
  EXPECT_EQ(parsed->events[2].offset, 32u + 2 + 32 + 17);
  auto replay = ReplayEventLog(*parsed);
  ASSERT_TRUE(replay);
  ASSERT_EQ(replay->size(), 1u);
  EXPECT_EQ((*replay)[0].alg, kAlgSha1);
  Bytes start(20, 0);
  start.back() = 3;
  Bytes p0 = Extend(kAlgSha1, start, H(kAlgSha1, B("v1")));
  p0 = Extend(kAlgSha1, p0, H(kAlgSha1, Bytes(4)));
  EXPECT_EQ((*replay)[0].pcrs[0], p0);
  EXPECT_EQ((*replay)[0].pcrs[4], Extend(kAlgSha1, Bytes(20, 0), H(kAlgSha1, B("grub"))));
  EXPECT_NE(EventLogToText(*parsed).find("sha1:"), std::string::npos);
}

TEST(EventLogParse, Tpm12SpecIdHeaderIsASha1Log) {
  Bytes header_data = B(std::string_view("Spec ID Event00\0", 16));
  header_data.resize(40, 0);
  Bytes log = Sha1Record(0, kEvNoAction, Bytes(20, 0), header_data);
  Bytes r = Sha1Record(7, kEvSeparator, H(kAlgSha1, Bytes(4)), Bytes(4));
  log.insert(log.end(), r.begin(), r.end());
  auto parsed = ParseEventLog(log);
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->format, LogFormat::kSha1);
  EXPECT_EQ(parsed->events.size(), 2u);
}

// ---------------------------------------------------------------- real-world shapes
TEST(EventLogParse, FreeSpaceAfterTheLastRecordEndsTheLog) {
  EventLogBuilder b;
  ASSERT_TRUE(b.AddSeparator(0));
  for (uint8_t fill : {0x00, 0xFF}) {
    Bytes log = b.bytes();
    log.resize(log.size() + 65536, fill);
    auto parsed = ParseEventLog(log);
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed->events.size(), 2u);
    EXPECT_EQ(parsed->used_bytes, b.bytes().size());
    EXPECT_EQ(parsed->free_bytes, 65536u);
  }
  // Free space right after the header: a log with no records yet.
  Bytes empty = EventLogBuilder().bytes();
  empty.resize(4096, 0);
  auto parsed = ParseEventLog(empty);
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->events.size(), 1u);
  // Zeros followed by anything else are not free space but a broken record.
  Bytes bad = b.bytes();
  bad.resize(bad.size() + 100, 0);
  bad.push_back(1);
  EXPECT_NE(ErrorOf(bad).find("offset " + std::to_string(b.bytes().size() + 8)), std::string::npos)
      << ErrorOf(bad);
}

TEST(EventLogParse, LogsOver64KiBAndUefiEventTypes) {
  EventLogBuilder b;
  Bytes var(2000, 0x5A);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(b.Measure(7, kEvEfiVariableAuthority, var, var));
  ASSERT_TRUE(b.Measure(2, kEvEfiBootServicesDriver, Bytes(40, 1), B("driver")));
  ASSERT_TRUE(b.Measure(0, kEvEfiPlatformFirmwareBlob2, Bytes(17, 0), B("blob")));
  ASSERT_TRUE(b.Measure(1, kEvEfiHandoffTables2, Bytes(9, 0), B("tables")));
  ASSERT_GT(b.bytes().size(), 65536u);
  auto parsed = ParseEventLog(b.bytes());
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->events.size(), 64u);
  std::string text = EventLogToText(*parsed);
  EXPECT_NE(text.find("EV_EFI_VARIABLE_AUTHORITY"), std::string::npos);
  EXPECT_NE(text.find("EV_EFI_BOOT_SERVICES_DRIVER"), std::string::npos);
  EXPECT_NE(text.find("EV_EFI_PLATFORM_FIRMWARE_BLOB2"), std::string::npos);
  EXPECT_NE(text.find("EV_EFI_HANDOFF_TABLES2"), std::string::npos);
}

TEST(EventLogParse, UnknownAlgorithmWithItsSizeIsParsedButNotReplayed) {
  // A header listing SHA-256 and an algorithm 0x0099 of 16 bytes, then one record.
  Bytes spec = B(std::string_view("Spec ID Event03\0", 16));
  Put32(spec, 0);
  spec.insert(spec.end(), {0, 2, 2, 2});
  Put32(spec, 2);
  Put16(spec, kAlgSha256);
  Put16(spec, 32);
  Put16(spec, 0x0099);
  Put16(spec, 16);
  spec.push_back(0);
  Bytes log = Sha1Record(0, kEvNoAction, Bytes(20, 0), spec);
  Put32(log, 3);
  Put32(log, kEvSeparator);
  Put32(log, 2);
  Put16(log, 0x0099);
  log.insert(log.end(), 16, 0xEE);
  Put16(log, kAlgSha256);
  Bytes d = H(kAlgSha256, Bytes(4));
  log.insert(log.end(), d.begin(), d.end());
  Put32(log, 4);
  log.insert(log.end(), 4, 0);
  auto parsed = ParseEventLog(log);
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->events[1].digests[0].alg, 0x0099);
  auto replay = ReplayEventLog(*parsed);
  ASSERT_TRUE(replay);
  ASSERT_EQ(replay->size(), 1u);
  EXPECT_EQ((*replay)[0].pcrs[3], Extend(kAlgSha256, Bytes(32), d));
  EXPECT_NE(EventLogToText(*parsed).find("alg_0x0099:eeee"), std::string::npos);
}

// ---------------------------------------------------------------- malformed input
void ExpectError(const Bytes& log, size_t offset, std::string_view words,
                 const ParseLimits& limits = {}) {
  std::string e = ErrorOf(log, limits);
  EXPECT_NE(e.find("at offset " + std::to_string(offset) + ":"), std::string::npos) << e;
  EXPECT_NE(e.find(words), std::string::npos) << e;
}

Bytes SeparatorLog() {
  EventLogBuilder b;
  EXPECT_TRUE(b.AddSeparator(0));
  return b.bytes();
}

TEST(EventLogMalformed, ZeroSizeLog) { ExpectError({}, 0, "empty"); }

TEST(EventLogMalformed, TruncatedHeader) {
  Bytes log = SeparatorLog();
  ExpectError(Bytes(log.begin(), log.begin() + 20), 0, "truncated header");
  // The Spec ID event's data cut short of its declared size.
  ExpectError(Bytes(log.begin(), log.begin() + 50), 32, "runs past the end");
  // A declared size too small for the algorithm list.
  Bytes cut = log;
  Set32(cut, 28, 30);
  ExpectError(cut, 32 + 28, "truncated in its algorithm list");
}

TEST(EventLogMalformed, BadSpecIdSignature) {
  Bytes log = SeparatorLog();
  log[32 + 14] = '9';  // "Spec ID Event09"
  ExpectError(log, 32, "bad Spec ID signature");
}

TEST(EventLogMalformed, NonZeroHeaderDigest) {
  Bytes log = SeparatorLog();
  log[10] = 1;
  ExpectError(log, 8, "digest is not zero");
}

TEST(EventLogMalformed, DigestCountMismatch) {
  Bytes log = SeparatorLog();
  Set32(log, kHeaderSize + 8, 1);
  ExpectError(log, kHeaderSize + 8, "digest count 1 does not match the 2 algorithms");
}

TEST(EventLogMalformed, AlgorithmSizes) {
  Bytes log = SeparatorLog();
  Set16(log, 32 + 30, 33);  // SHA-256 with 33 bytes
  ExpectError(log, 32 + 30, "digest size of 33, not 32");
  Bytes unknown = SeparatorLog();
  Set16(unknown, 32 + 28, 0x0099);
  Set16(unknown, 32 + 30, 0);
  ExpectError(unknown, 32 + 30, "implausible digest size of 0");
  Bytes twice = SeparatorLog();
  Set16(twice, 32 + 32, kAlgSha256);
  Set16(twice, 32 + 34, 32);
  ExpectError(twice, 32 + 32, "twice");
  Bytes none = SeparatorLog();
  Set32(none, 32 + 24, 0);
  ExpectError(none, 32 + 24, "0 algorithms");
}

TEST(EventLogMalformed, VendorInfoSizeMismatch) {
  Bytes log = SeparatorLog();
  log[32 + 36] = 5;
  ExpectError(log, 32 + 36, "vendorInfoSize 5");
}

TEST(EventLogMalformed, DigestAlgorithmNotInSpecId) {
  Bytes log = SeparatorLog();
  Set16(log, kHeaderSize + 12, kAlgSha512);
  ExpectError(log, kHeaderSize + 12, "sha512 is not listed");
  Bytes twice = SeparatorLog();
  Set16(twice, kHeaderSize + 12 + 34, kAlgSha256);
  ExpectError(twice, kHeaderSize + 12 + 34, "second sha256");
}

TEST(EventLogMalformed, EventSizeOverLimit) {
  EventLogBuilder b;
  ASSERT_TRUE(b.Measure(1, kEvPostCode, Bytes(100, 7), Bytes(1)));
  ParseLimits limits;
  limits.max_event_data = 50;
  ExpectError(b.bytes(), kHeaderSize + kRecordPrefix, "event size 100 exceeds the limit of 50",
              limits);
  Bytes huge = b.bytes();
  Set32(huge, kHeaderSize + kRecordPrefix, 0xFFFFFFF0);
  ExpectError(huge, kHeaderSize + kRecordPrefix, "exceeds the limit");
}

TEST(EventLogMalformed, RecordRunningPastTheEnd) {
  Bytes log = SeparatorLog();
  // Data cut short.
  ExpectError(Bytes(log.begin(), log.end() - 1), kHeaderSize + kRecordPrefix + 4,
              "event data of 4 bytes runs past the end");
  // Cut inside the SHA-384 digest.
  ExpectError(Bytes(log.begin(), log.begin() + kHeaderSize + 60), kHeaderSize + 48,
              "sha384 digest of 48 bytes runs past the end");
  // Cut inside the fixed header.
  ExpectError(Bytes(log.begin(), log.begin() + kHeaderSize + 6), kHeaderSize, "record truncated");
  // Cut before the event size.
  ExpectError(Bytes(log.begin(), log.begin() + kHeaderSize + kRecordPrefix + 2),
              kHeaderSize + kRecordPrefix, "no room for its event size");
  // A SHA-1 log cut inside its second record.
  Bytes sha1 = Sha1Record(0, kEvPostCode, Bytes(20, 1), Bytes(3, 1));
  sha1.resize(sha1.size() + 10, 1);
  ExpectError(sha1, 35, "a TCG_PCR_EVENT needs 32");
}

TEST(EventLogMalformed, PcrOutOfRange) {
  Bytes log = SeparatorLog();
  Set32(log, kHeaderSize, 24);
  ExpectError(log, kHeaderSize, "PCR index 24 out of range");
  // The first record of a SHA-1 log is an ordinary event and checked as such.
  ExpectError(Sha1Record(0x80000, kEvPostCode, Bytes(20), Bytes(4)), 0, "PCR index 524288");
}

TEST(EventLogMalformed, LogAndEventCountLimits) {
  EventLogBuilder b;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.AddSeparator(1));
  ParseLimits limits;
  limits.max_events = 4;
  ExpectError(b.bytes(), kHeaderSize + 3 * (kRecordPrefix + 8), "more than 4 events", limits);
  limits = {};
  limits.max_log_size = 100;
  ExpectError(b.bytes(), 0, "exceeds the limit of 100", limits);
  Bytes big(ParseLimits{}.max_log_size + 1, 0);
  ExpectError(big, 0, "exceeds the limit");
}

// ---------------------------------------------------------------- rendering
TEST(EventLogRender, TextAndJson) {
  EventLogBuilder b;
  ASSERT_TRUE(b.AddStartupLocality(3));
  ASSERT_TRUE(b.AddIpl(8, "console=ttyS0"));
  ASSERT_TRUE(b.AddSeparator(0));
  // A UEFI_VARIABLE_DATA for SecureBoot = 00.
  Bytes var(16, 0x11);
  Bytes tmp;
  Put32(tmp, 10);
  Put32(tmp, 0);
  Put32(tmp, 1);
  Put32(tmp, 0);
  var.insert(var.end(), tmp.begin(), tmp.end());
  for (char c : std::string("SecureBoot")) var.insert(var.end(), {static_cast<uint8_t>(c), 0});
  var.push_back(0);
  ASSERT_TRUE(b.Measure(7, kEvEfiVariableDriverConfig, var, var));
  auto log = ParseEventLog(b.bytes());
  ASSERT_TRUE(log);
  std::string text = EventLogToText(*log);
  std::istringstream lines(text);
  std::vector<std::string> l;
  for (std::string s; std::getline(lines, s);) l.push_back(s);
  ASSERT_EQ(l.size(), 5u);
  EXPECT_NE(l[0].find("Spec ID Event03, 2 algorithm(s)"), std::string::npos) << l[0];
  EXPECT_NE(l[1].find("EV_NO_ACTION"), std::string::npos);
  EXPECT_NE(l[1].find("StartupLocality 3"), std::string::npos) << l[1];
  EXPECT_NE(l[2].find("PCR8"), std::string::npos);
  EXPECT_NE(l[2].find("EV_IPL"), std::string::npos);
  EXPECT_NE(l[2].find("\"console=ttyS0\""), std::string::npos) << l[2];
  Bytes sep = H(kAlgSha256, Bytes(4));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string sep_hex;
  for (uint8_t c : sep) sep_hex += std::string{kHex[c >> 4], kHex[c & 15]};
  EXPECT_NE(l[3].find("sha256:" + sep_hex), std::string::npos) << l[3];
  EXPECT_NE(l[3].find("EV_SEPARATOR"), std::string::npos);
  EXPECT_NE(l[4].find("SecureBoot = 00"), std::string::npos) << l[4];
  EXPECT_NE(l[4].find("11111111-1111-1111-1111-111111111111"), std::string::npos) << l[4];

  auto replay = ReplayEventLog(*log);
  ASSERT_TRUE(replay);
  auto j = nlohmann::json::parse(EventLogToJson(*log, *replay));
  EXPECT_EQ(j["format"], "crypto-agile");
  EXPECT_EQ(j["startup_locality"], 3);
  EXPECT_EQ(j["spec_id"]["algorithms"][1]["alg"], "sha384");
  ASSERT_EQ(j["events"].size(), 5u);
  EXPECT_EQ(j["events"][3]["type_name"], "EV_SEPARATOR");
  EXPECT_EQ(j["events"][3]["digests"]["sha256"], sep_hex);
  EXPECT_EQ(j["events"][2]["description"], "\"console=ttyS0\"");
  EXPECT_EQ(j["pcrs"]["sha256"]["23"], std::string(64, '0'));
  EXPECT_EQ(j["pcrs"]["sha384"]["17"], std::string(96, 'f'));
  EXPECT_FALSE(nlohmann::json::parse(EventLogToJson(*log)).contains("pcrs"));
}

TEST(EventLogRender, NamesAndDescriptionsNeverFail) {
  EXPECT_EQ(EventTypeName(kEvEfiHcrtmEvent), "EV_EFI_HCRTM_EVENT");
  EXPECT_EQ(EventTypeName(0x1234), "EV_UNKNOWN_0x00001234");
  EXPECT_EQ(AlgName(kAlgSm3_256), "sm3_256");
  EXPECT_EQ(DescribeEventData(kEvSeparator, Bytes(4, 0xFF)), "ffffffff (error)");
  EXPECT_EQ(DescribeEventData(kEvIpl, {}), "(no data)");
  Bytes tagged = {0xEC, 0x22, 0x3B, 0x8B, 3, 0, 0, 0, 'a', 'b', 0};
  EXPECT_EQ(DescribeEventData(kEvEventTag, tagged), "tag 0x8b3b22ec \"ab\"");
  for (uint32_t type : {kEvEfiVariableBoot, kEvEfiBootServicesApplication,
                        kEvEfiPlatformFirmwareBlob, kEvEfiPlatformFirmwareBlob2,
                        kEvEfiHandoffTables, kEvEfiHandoffTables2, kEvNoAction, kEvEventTag}) {
    for (size_t n : {0, 1, 16, 17, 33}) {
      Bytes junk(n, 0xFF);
      EXPECT_FALSE(DescribeEventData(type, junk).empty());
    }
  }
}

// ---------------------------------------------------------------- real OVMF logs
#ifdef VMM_EVENTLOG_SAMPLES_DIR
Bytes ReadFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

uint16_t AlgByName(const std::string& name) {
  for (uint16_t a : {kAlgSha1, kAlgSha256, kAlgSha384, kAlgSha512, kAlgSm3_256}) {
    if (AlgName(a) == name) return a;
  }
  return 0;
}

TEST(EventLogSamples, OvmfLogsParseAndReplayToTheTpmsPcrs) {
  std::filesystem::path dir = VMM_EVENTLOG_SAMPLES_DIR;
  std::vector<std::filesystem::path> logs;
  if (std::filesystem::is_directory(dir)) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() == ".bin") logs.push_back(e.path());
    }
  }
  if (logs.empty()) GTEST_SKIP() << "no sample logs in " << dir;
  for (const auto& path : logs) {
    SCOPED_TRACE(path.filename().string());
    Bytes bytes = ReadFile(path);
    auto log = ParseEventLog(bytes);
    ASSERT_TRUE(log) << log.error().message();
    EXPECT_EQ(log->format, LogFormat::kCryptoAgile);
    EXPECT_EQ(log->used_bytes, bytes.size());
    EXPECT_GT(log->events.size(), 10u);
    bool saw_separator = false;
    for (const Event& e : log->events) saw_separator |= e.type == kEvSeparator;
    EXPECT_TRUE(saw_separator);
    auto replay = ReplayEventLog(*log);
    ASSERT_TRUE(replay) << replay.error().message();
    EXPECT_FALSE(EventLogToText(*log).empty());
    EXPECT_FALSE(EventLogToJson(*log, *replay).empty());

    // "<alg> <pcr> <hex>" per line, read by the same script from the guest's sysfs.
    std::ifstream pcrs(std::filesystem::path(path).replace_extension(".pcrs"));
    ASSERT_TRUE(pcrs) << "no .pcrs beside the log";
    int compared = 0;
    std::string alg_name, hex;
    uint32_t index = 0;
    while (pcrs >> alg_name >> index >> hex) {
      // PCR 10 belongs to IMA (the guest kernel extends it; its events are not in this log).
      if (index == 10 || index >= kNumPcrs) continue;
      const PcrBank* bank = BankOf(*replay, AlgByName(alg_name));
      ASSERT_NE(bank, nullptr) << alg_name << " is not a bank of the log";
      std::string want;
      static constexpr char kHex[] = "0123456789abcdef";
      for (uint8_t c : bank->pcrs[index]) want += std::string{kHex[c >> 4], kHex[c & 15]};
      EXPECT_EQ(hex, want) << alg_name << " PCR " << index;
      ++compared;
    }
    EXPECT_GE(compared, 23);
  }
}
#endif

}  // namespace
}  // namespace vmm::attestation
