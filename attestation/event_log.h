// TCG PC Client event logs: a builder for the crypto-agile format, a parser for the logs real
// firmware writes (SHA-1-only TCG_PCR_EVENT logs and crypto-agile TCG_PCR_EVENT2 logs), a
// replayer computing the PCR values the events lead to, and text/JSON renderings.
//
// Layout (TCG PC Client Platform Firmware Profile, §10):
//   header   TCG_PCR_EVENT: u32 pcr=0, u32 type=EV_NO_ACTION, u8[20] zero, u32 size,
//            TCG_EfiSpecIDEvent "Spec ID Event03\0", u32 platformClass, u8 minor, u8 major,
//            u8 errata, u8 uintnSize, u32 n, {u16 alg, u16 size}[n], u8 vendorSize, vendor
//   records  TCG_PCR_EVENT2: u32 pcr, u32 type, u32 count, {u16 alg, digest}[count],
//            u32 size, data[size]
// A log without the Spec ID Event03 header is a SHA-1 log: TCG_PCR_EVENT records throughout.
//
//   EventLogBuilder b;                      // SHA-256 and SHA-384
//   b.AddStartupLocality(3);
//   b.Measure(4, kEvEfiBootServicesApplication, {}, kernel_bytes);
//   ASSIGN_OR_RETURN(EventLog log, ParseEventLog(b.bytes()));
//   ASSIGN_OR_RETURN(std::vector<PcrBank> pcrs, ReplayEventLog(log));
//
// Everything here is a pure function of its inputs except the builder's own buffer; nothing
// touches KVM, a TPM or the VMM. Hashing uses OpenSSL's EVP interface.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/tpm_alg.h"

namespace vmm::attestation {

// ---------------------------------------------------------------- algorithms (TPM_ALG_ID)
// (base/tpm_alg.h holds the table; these are its names here.)
inline constexpr uint16_t kAlgSha1 = kTpmAlgSha1;
inline constexpr uint16_t kAlgSha256 = kTpmAlgSha256;
inline constexpr uint16_t kAlgSha384 = kTpmAlgSha384;
inline constexpr uint16_t kAlgSha512 = kTpmAlgSha512;
inline constexpr uint16_t kAlgSm3_256 = kTpmAlgSm3_256;

// The digest size of an algorithm this library knows (the five above), else nullopt.
std::optional<size_t> DigestSizeOf(uint16_t alg);
// "sha1", "sha256", "sha384", "sha512", "sm3_256", or "alg_0x00NN".
std::string AlgName(uint16_t alg);
// True when OpenSSL on this machine can compute the algorithm (SM3 may be disabled).
bool AlgSupported(uint16_t alg);

// ---------------------------------------------------------------- event types
inline constexpr uint32_t kEvPrebootCert = 0x0;
inline constexpr uint32_t kEvPostCode = 0x1;
inline constexpr uint32_t kEvNoAction = 0x3;
inline constexpr uint32_t kEvSeparator = 0x4;
inline constexpr uint32_t kEvAction = 0x5;
inline constexpr uint32_t kEvEventTag = 0x6;
inline constexpr uint32_t kEvSCrtmContents = 0x7;
inline constexpr uint32_t kEvSCrtmVersion = 0x8;
inline constexpr uint32_t kEvCpuMicrocode = 0x9;
inline constexpr uint32_t kEvPlatformConfigFlags = 0xA;
inline constexpr uint32_t kEvTableOfDevices = 0xB;
inline constexpr uint32_t kEvCompactHash = 0xC;
inline constexpr uint32_t kEvIpl = 0xD;
inline constexpr uint32_t kEvIplPartitionData = 0xE;
inline constexpr uint32_t kEvNonhostCode = 0xF;
inline constexpr uint32_t kEvNonhostConfig = 0x10;
inline constexpr uint32_t kEvNonhostInfo = 0x11;
inline constexpr uint32_t kEvOmitBootDeviceEvents = 0x12;
inline constexpr uint32_t kEvEfiVariableDriverConfig = 0x80000001;
inline constexpr uint32_t kEvEfiVariableBoot = 0x80000002;
inline constexpr uint32_t kEvEfiBootServicesApplication = 0x80000003;
inline constexpr uint32_t kEvEfiBootServicesDriver = 0x80000004;
inline constexpr uint32_t kEvEfiRuntimeServicesDriver = 0x80000005;
inline constexpr uint32_t kEvEfiGptEvent = 0x80000006;
inline constexpr uint32_t kEvEfiAction = 0x80000007;
inline constexpr uint32_t kEvEfiPlatformFirmwareBlob = 0x80000008;
inline constexpr uint32_t kEvEfiHandoffTables = 0x80000009;
inline constexpr uint32_t kEvEfiPlatformFirmwareBlob2 = 0x8000000A;
inline constexpr uint32_t kEvEfiHandoffTables2 = 0x8000000B;
inline constexpr uint32_t kEvEfiVariableBoot2 = 0x8000000C;
inline constexpr uint32_t kEvEfiGptEvent2 = 0x8000000D;
inline constexpr uint32_t kEvEfiHcrtmEvent = 0x80000010;
inline constexpr uint32_t kEvEfiVariableAuthority = 0x800000E0;
inline constexpr uint32_t kEvEfiSpdmFirmwareBlob = 0x800000E1;
inline constexpr uint32_t kEvEfiSpdmFirmwareConfig = 0x800000E2;

// "EV_SEPARATOR", "EV_EFI_VARIABLE_BOOT", ...; "EV_UNKNOWN_0x........" otherwise.
std::string EventTypeName(uint32_t type);

inline constexpr uint32_t kNumPcrs = 24;
inline constexpr std::string_view kSpecIdSignature03{"Spec ID Event03\0", 16};
inline constexpr std::string_view kStartupLocalitySignature{"StartupLocality\0", 16};

// ---------------------------------------------------------------- the parsed log
struct Digest {
  uint16_t alg = 0;
  std::vector<uint8_t> bytes;
  bool operator==(const Digest&) const = default;
};

struct AlgorithmSize {
  uint16_t alg = 0;
  uint16_t digest_size = 0;
  bool operator==(const AlgorithmSize&) const = default;
};

// TCG_EfiSpecIDEvent of a crypto-agile log's header.
struct SpecIdEvent {
  uint32_t platform_class = 0;
  uint8_t spec_version_minor = 0;
  uint8_t spec_version_major = 2;
  uint8_t spec_errata = 2;
  uint8_t uintn_size = 2;  // 1: 32-bit UINTN, 2: 64-bit
  std::vector<AlgorithmSize> algorithms;
  std::vector<uint8_t> vendor_info;
};

struct Event {
  uint32_t index = 0;   // position in the log, 0 = the first record (the header)
  uint64_t offset = 0;  // byte offset of the record in the log
  uint32_t pcr = 0;
  uint32_t type = 0;
  std::vector<Digest> digests;  // one per bank (crypto-agile) or one SHA-1 (SHA-1 log)
  std::vector<uint8_t> data;
};

enum class LogFormat { kSha1, kCryptoAgile };

struct EventLog {
  LogFormat format = LogFormat::kCryptoAgile;
  std::optional<SpecIdEvent> spec_id;  // set for crypto-agile logs
  // Every record, the header included (index 0): a SHA-1 log's first event is an ordinary
  // event; a crypto-agile log's is the Spec ID header (EV_NO_ACTION, never extended).
  std::vector<Event> events;
  uint64_t used_bytes = 0;                  // bytes up to the end of the last record
  uint64_t free_bytes = 0;                  // trailing 0x00/0xFF bytes after it (free log space)
  std::optional<uint8_t> startup_locality;  // from an EV_NO_ACTION StartupLocality event
};

struct ParseLimits {
  size_t max_log_size = 16u << 20;   // bytes
  size_t max_event_data = 1u << 20;  // bytes of data of one event
  size_t max_events = 100000;
};

// Parses a whole log. A record boundary followed only by 0x00 or 0xFF bytes ends the log
// (free space of a firmware log area). Any malformed input yields an error naming the byte
// offset where it was found.
Result<EventLog> ParseEventLog(std::span<const uint8_t> bytes, const ParseLimits& limits = {});

// ---------------------------------------------------------------- replay
struct PcrBank {
  uint16_t alg = 0;
  std::array<std::vector<uint8_t>, kNumPcrs> pcrs;
};

// The PCR values the log's events lead to, one bank per algorithm of the log (SHA-1 for a
// SHA-1 log) that OpenSSL can compute; a bank OpenSSL lacks (or an unknown algorithm) is left
// out. PCRs 0-16 and 23 start at zero and 17-22 at all ones (their reset value before a
// dynamic launch); a StartupLocality event sets the last byte of PCR 0's start value. Events of
// type EV_NO_ACTION are not extended.
Result<std::vector<PcrBank>> ReplayEventLog(const EventLog& log);

// ---------------------------------------------------------------- rendering
// One line per event: index, PCR, type name, each digest as alg:hex, a short description.
std::string EventLogToText(const EventLog& log);
// {"format", "spec_id", "startup_locality", "events": [...], "pcrs" (when replay is given)}.
std::string EventLogToJson(const EventLog& log, std::span<const PcrBank> replay = {},
                           int indent = 2);
// A short, printable description of an event's data (e.g. a UEFI variable's name, a
// separator's value, an EV_IPL string); never fails.
std::string DescribeEventData(uint32_t type, std::span<const uint8_t> data);

// ---------------------------------------------------------------- hashing
// Digests of `data` for every algorithm in `algs`, in one pass over memory (1 MiB chunks fed
// to one EVP_MD_CTX per algorithm).
Result<std::vector<Digest>> HashAll(std::span<const uint16_t> algs, std::span<const uint8_t> data);

// ---------------------------------------------------------------- builder
// Builds a crypto-agile log in memory: the header at construction, then one TCG_PCR_EVENT2
// per call. Every record carries a digest for every bank, in the banks' order.
class EventLogBuilder {
 public:
  // SHA-256 and SHA-384, no vendor info, 16 MiB maximum.
  EventLogBuilder();
  // Banks must be distinct algorithms OpenSSL can compute (at least one); vendor info at most
  // 255 bytes. max_size bounds the whole log (e.g. the ACPI TPM2 table's LAML).
  static Result<EventLogBuilder> Create(std::vector<uint16_t> banks,
                                        std::span<const uint8_t> vendor_info = {},
                                        size_t max_size = 16u << 20);

  // Hashes `to_hash` with every bank and appends the record.
  Result<void> Measure(uint32_t pcr, uint32_t type, std::span<const uint8_t> event_data,
                       std::span<const uint8_t> to_hash);
  // Appends a record with precomputed digests: exactly one per bank, any order.
  Result<void> Record(uint32_t pcr, uint32_t type, std::span<const uint8_t> event_data,
                      std::span<const Digest> digests);

  // EV_NO_ACTION in PCR 0, zero digests, data "StartupLocality\0" + locality. Must come before
  // any event of PCR 0 is extended (the spec puts it first after the header).
  Result<void> AddStartupLocality(uint8_t locality = 3);
  // EV_S_CRTM_VERSION in PCR 0; `version` is the data as given (often a UCS-2 string).
  Result<void> AddSCrtmVersion(std::span<const uint8_t> version);
  // EV_PLATFORM_CONFIG_FLAGS in PCR 1 (or `pcr`), the flags measured as given.
  Result<void> AddPlatformConfigFlags(std::span<const uint8_t> flags, uint32_t pcr = 1);
  // EV_IPL: the text is both the data and what is hashed (no NUL added).
  Result<void> AddIpl(uint32_t pcr, std::string_view text);
  // EV_SEPARATOR: data 00 00 00 00 and the digest of those 4 bytes.
  Result<void> AddSeparator(uint32_t pcr);

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const std::vector<uint16_t>& banks() const { return banks_; }
  size_t event_count() const { return events_; }  // records after the header

 private:
  EventLogBuilder(std::vector<uint16_t> banks, std::span<const uint8_t> vendor_info,
                  size_t max_size);
  Result<void> Append(uint32_t pcr, uint32_t type, std::span<const uint8_t> event_data,
                      std::span<const Digest> digests_in_bank_order);

  std::vector<uint16_t> banks_;
  size_t max_size_;
  std::vector<uint8_t> bytes_;
  size_t events_ = 0;
  bool pcr0_extended_ = false;
};

}  // namespace vmm::attestation
