// CHECK(cond): a fuzzer's assertion. A broken invariant traps, which libFuzzer reports as a
// crash with the input that caused it; unlike assert() it stays on in release builds.
#pragma once

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)
