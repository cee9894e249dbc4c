// The vCPU exit decoder (vmm/vm/machine/exit_decode.h) over arbitrary kvm_run mappings: the
// first two bytes pick the mapping's size (0 to 4 pages), the rest fill it (zeros after).
//
// Invariants: decoding never reads or hands out memory outside the mapping (ASan checks
// every byte of each span, read and written as a handler would); an Io has an access size
// of 1, 2 or 4, a direction, and size * count bytes of data past kvm_run; an Mmio has 1 to
// 8 bytes inside kvm_run's mmio.data; decoding is deterministic.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "vmm/vm/machine/exit_decode.h"

namespace {

bool Inside(std::span<const uint8_t> inner, const uint8_t* begin, size_t size) {
  return inner.data() >= begin && inner.size() <= size &&
         static_cast<size_t>(inner.data() - begin) <= size - inner.size();
}

void Touch(std::span<uint8_t> s) {
  for (uint8_t& b : s) b = static_cast<uint8_t>(b + 1);  // as a handler's IN or read would
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmm;  // NOLINT: a fuzzer
  if (size < 2) return 0;
  const size_t mapping_size = (size_t{data[0]} | size_t{data[1]} << 8) % (4 * 4096 + 1);
  data += 2;
  size -= 2;
  std::vector<uint64_t> storage(mapping_size / 8 + 1);  // aligned for kvm_run
  uint8_t* base = reinterpret_cast<uint8_t*>(storage.data());
  std::memcpy(base, data, std::min(size, mapping_size));
  std::span<uint8_t> mapping(base, mapping_size);

  auto first = DecodeExit(mapping);
  auto again = DecodeExit(mapping);
  CHECK(first.has_value() == again.has_value());
  if (RefusedWithAReason(first)) return 0;
  CHECK(mapping_size >= sizeof(kvm_run));
  CHECK(first->index() == again->index());
  const kvm_run& run = *reinterpret_cast<const kvm_run*>(base);
  if (auto* io = std::get_if<exits::Io>(&first.value())) {
    CHECK(io->size == 1 || io->size == 2 || io->size == 4);
    CHECK(io->data.size() == uint64_t{io->size} * io->count);
    CHECK(Inside(io->data, base + sizeof(kvm_run), mapping_size - sizeof(kvm_run)));
    CHECK(io->data.data() == base + run.io.data_offset);
    Touch(io->data);
  } else if (auto* m = std::get_if<exits::Mmio>(&first.value())) {
    CHECK(m->data.size() >= 1 && m->data.size() <= 8);
    CHECK(Inside(m->data, run.mmio.data, sizeof(run.mmio.data)));
    Touch(m->data);
  } else if (auto* e = std::get_if<exits::InternalError>(&first.value())) {
    CHECK(e->data.size() <= 16 && e->insn_bytes.size() <= 15);
  }
  return 0;
}
