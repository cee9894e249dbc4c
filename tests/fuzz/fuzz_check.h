// CHECK(cond): a fuzzer's assertion. A broken invariant traps, which libFuzzer reports as a
// crash with the input that caused it; unlike assert() it stays on in release builds.
#pragma once

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// Whether a parser refused its input (a Result holding an error); a refusal must say why.
//   auto parsed = ParseEvidence(bytes);
//   if (RefusedWithAReason(parsed)) return 0;
template <typename R>
bool RefusedWithAReason(const R& result) {
  if (result.has_value()) return false;
  CHECK(!result.error().message().empty());
  return true;
}
