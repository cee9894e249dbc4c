// Arbitrary bytes as a TCG event log (attestation/event_log.h), the way a verifier sees a log
// sent by a guest or read from firmware memory: anything may be in it.
//
// Parse with default limits and with tight ones; on success replay, render as text and JSON.
// Checked: no crash; a parsed log's used and free bytes add up to the input; every record lies
// inside the used bytes; every event is in PCRs 0-23 unless EV_NO_ACTION; a crypto-agile
// record carries one digest per Spec ID algorithm; replay banks have PCRs of the digest size.
#include <cstdint>
#include <span>

#include "attestation/event_log.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace vmm::attestation;

void Check(std::span<const uint8_t> bytes, const ParseLimits& limits) {
  auto parsed = ParseEventLog(bytes, limits);
  if (!parsed) {
    CHECK(parsed.error().message().find("at offset ") != std::string::npos);
    return;
  }
  const EventLog& log = *parsed;
  CHECK(log.used_bytes + log.free_bytes == bytes.size());
  CHECK(!log.events.empty());
  CHECK(log.events.size() <= limits.max_events);
  for (const Event& e : log.events) {
    CHECK(e.offset < log.used_bytes);
    CHECK(e.data.size() <= limits.max_event_data);
    CHECK(e.type == kEvNoAction || e.pcr < kNumPcrs);
    if (log.format == LogFormat::kCryptoAgile && e.index > 0) {
      CHECK(e.digests.size() == log.spec_id->algorithms.size());
    }
  }
  auto replay = ReplayEventLog(log);
  if (replay) {
    for (const PcrBank& bank : *replay) {
      for (const auto& pcr : bank.pcrs) CHECK(pcr.size() == DigestSizeOf(bank.alg));
    }
  }
  std::string text = EventLogToText(log);
  CHECK(!text.empty());
  std::string json =
      EventLogToJson(log, replay ? std::span<const PcrBank>(*replay) : std::span<const PcrBank>());
  CHECK(!json.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  Check(bytes, ParseLimits{});
  ParseLimits tight;
  tight.max_event_data = 64;
  tight.max_events = 8;
  tight.max_log_size = 4096;
  Check(bytes, tight);
  return 0;
}
