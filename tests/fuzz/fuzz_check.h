// CHECK(cond): a fuzzer's assertion. A broken invariant traps, which libFuzzer reports as a
// crash with the input that caused it; unlike assert() it stays on in release builds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// A device's read of `width` bytes (at most 16) into a poisoned buffer: checks that it wrote
// no byte past them, and returns the buffer.
//   const uint8_t* b = CheckedRead(width, [&](std::span<uint8_t> out) { dev.Read(off, out); });
template <typename Read>
const uint8_t* CheckedRead(size_t width, Read&& read) {
  static uint8_t buf[16];
  CHECK(width <= sizeof(buf));
  __builtin_memset(buf, 0xEE, sizeof(buf));
  read(std::span<uint8_t>(buf, width));
  for (size_t i = width; i < sizeof(buf); ++i) CHECK(buf[i] == 0xEE);
  return buf;
}

// Whether a parser refused its input (a Result holding an error); a refusal must say why.
//   auto parsed = ParseEvidence(bytes);
//   if (RefusedWithAReason(parsed)) return 0;
template <typename R>
bool RefusedWithAReason(const R& result) {
  if (result.has_value()) return false;
  CHECK(!result.error().message().empty());
  return true;
}
