// ExpectContainsAll / ExpectContainsNone: one expectation per needle for a text a test reads
// (a tool's output, a disassembly, a log), each failure naming the needle and showing the text.
//
//   ExpectContainsAll(dsl, {"Scope (_SB)", "Device (COM1)"});
//   ExpectContainsNone(out.text, {"ACPI Error", "ACPI Warning"});
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

namespace vmm::testing_util {

inline void ExpectContainsAll(std::string_view text,
                              std::initializer_list<std::string_view> needles) {
  for (std::string_view needle : needles) {
    EXPECT_NE(text.find(needle), std::string_view::npos) << "missing \"" << needle << "\" in:\n"
                                                         << text;
  }
}

inline void ExpectContainsNone(std::string_view text,
                               std::initializer_list<std::string_view> needles) {
  for (std::string_view needle : needles) {
    EXPECT_EQ(text.find(needle), std::string_view::npos) << "unexpected \"" << needle << "\" in:\n"
                                                         << text;
  }
}

}  // namespace vmm::testing_util
