// An audit log as `vmm audit verify` meets it: any bytes, from a log someone may have edited
// (vmm/manager/audit/log_verifier.h), and each of its lines as a record (log_format.h).
//
// Input: the log's bytes.
// Checked: no crash; a line that parses serializes to a line that parses back to the same
// serialization; the verifier's report is consistent (counts, a finding's line within the log,
// the status from its findings) and the same whether or not a key is given, apart from the
// checkpoint signatures.
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "vmm/manager/audit/checkpoint_key.h"
#include "vmm/manager/audit/log_format.h"
#include "vmm/manager/audit/log_verifier.h"

namespace {

using namespace vmm::audit;

// A fixed public key: signatures in fuzzed input do not verify, which is the point.
constexpr std::string_view kPublicKey =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEaGQvBT+VWLe4dl81+lF33xqiIXbM\n"
    "aLi5eMyoqTSr6L/OjUxfyqLa1mMyUcT6fOh65kVlZpIPZ22tPmWziNDP7Q==\n"
    "-----END PUBLIC KEY-----\n";

const CheckpointVerifier* Key() {
  static auto key = CheckpointVerifier::FromPem(kPublicKey);
  return key ? &*key : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    auto record = ParseRecord(text.substr(start, nl - start));
    if (record) {
      const std::string line = SerializeRecord(*record);
      auto back = ParseRecord(line);
      CHECK(back.has_value());
      CHECK(SerializeRecord(*back) == line);
      CheckpointMessage(*record);
    }
    start = nl + 1;
  }

  const VerifyReport plain = VerifyLogText(text, VerifyOptions{});
  CHECK(plain.records <= plain.lines);
  CHECK(plain.checkpoints <= plain.records);
  CHECK(plain.findings.size() <= kMaxFindings);
  CHECK(!plain.signatures_checked && plain.signatures_verified == 0);
  for (const Finding& f : plain.findings) CHECK(f.line <= plain.lines);

  CHECK(Key() != nullptr);
  VerifyOptions keyed;
  keyed.key = Key();
  const VerifyReport with_key = VerifyLogText(text, keyed);
  CHECK(with_key.records == plain.records && with_key.lines == plain.lines);
  CHECK(with_key.signatures_checked);
  CHECK(with_key.signatures_verified <= with_key.checkpoints);
  // A key only adds findings: a log tampered without it is tampered with it.
  if (plain.status() == VerifyStatus::kTampered)
    CHECK(with_key.status() == VerifyStatus::kTampered);

  (void)ParseAnchor(text.substr(0, 100));
  return 0;
}
