// Arbitrary bytes as a sealed vTPM state file (vtpm/state/sealed_format.h), the way the
// loader sees a file from the state directory, whose owner may have written anything.
//
// Input: byte 0 picks the mode, byte 1 the options, the rest is the file (or plaintext).
//   mode 0: Unseal the bytes. To get past the VM id and kind checks, option bit 0 makes
//           the expected VM id and kind the file's own. Checked: no crash; a success has
//           a header that matches the expectations and a plaintext of the header's length.
//   mode 1: Seal the bytes as plaintext, then change one byte (position and xor from the
//           options and the input) or truncate the image. Checked: an unchanged image
//           unseals to the same plaintext; any changed or truncated image is refused.
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "vtpm/state/sealed_format.h"

namespace {

using namespace vmm::vtpm;

const Key& FuzzKey() {
  static const Key* key = [] {
    std::array<uint8_t, kKeySize> b{};
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(0xA5 ^ i);
    return new Key(b);
  }();
  return *key;
}

void UnsealRaw(uint8_t options, std::span<const uint8_t> file) {
  Expected expected{VmId::FromName("fuzz-vm"),
                    (options & 2) ? BlobKind::kVolatile : BlobKind::kPermanent,
                    static_cast<uint64_t>(options >> 4)};
  if ((options & 1) && file.size() >= 32) {
    expected.vm_id = VmId::FromBytes(file.subspan(16).first<16>());
    uint32_t kind;
    std::memcpy(&kind, file.data() + 12, sizeof(kind));
    expected.kind = static_cast<BlobKind>(kind);
  }
  auto header = ParseHeader(file, expected);
  auto r = Unseal(FuzzKey(), expected, file);
  if (!header) CHECK(!r);
  if (!r) return;
  CHECK(r->header.vm_id == expected.vm_id && r->header.kind == expected.kind);
  CHECK(r->header.generation >= 1 && r->header.generation >= expected.min_generation);
  CHECK(r->plaintext.size() == r->header.plaintext_length);
  CHECK(file.size() == kHeaderSize + r->plaintext.size() + kTagSize);
}

void SealMutateUnseal(uint8_t options, std::span<const uint8_t> plaintext) {
  const VmId vm = VmId::FromName("fuzz-vm");
  const uint64_t generation = 1 + (options >> 5);
  auto sealed = Seal(FuzzKey(), {vm, BlobKind::kPermanent, generation}, plaintext);
  CHECK(sealed.has_value());
  std::vector<uint8_t> file = std::move(sealed).value();
  CHECK(file.size() == kHeaderSize + plaintext.size() + kTagSize);
  // Position and change come from the plaintext's first bytes, so the fuzzer steers them.
  uint32_t pick = 0;
  std::memcpy(&pick, plaintext.data(), std::min<size_t>(plaintext.size(), sizeof(pick)));
  const size_t pos = pick % file.size();
  bool changed = false;
  switch (options & 3) {
    case 0:
      break;
    case 1:
    case 2: {
      const uint8_t x = static_cast<uint8_t>((pick >> 24) | 1);
      file[pos] ^= x;
      changed = true;
      break;
    }
    case 3:
      file.resize(pos);
      changed = true;
      break;
  }
  auto r = Unseal(FuzzKey(), {vm, BlobKind::kPermanent, 0}, file);
  if (changed) {
    CHECK(!r);
    return;
  }
  CHECK(r.has_value() && r->header.generation == generation);
  CHECK(r->plaintext.size() == plaintext.size());
  CHECK(plaintext.empty() ||
        std::memcmp(r->plaintext.span().data(), plaintext.data(), plaintext.size()) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::span<const uint8_t> rest(data + 2, size - 2);
  if (data[0] & 1) {
    SealMutateUnseal(data[1], rest);
  } else {
    UnsealRaw(data[1], rest);
  }
  return 0;
}
