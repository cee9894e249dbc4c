#include "base/enum_names.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>

namespace vmm {
namespace {

enum class Color : uint8_t { kRed, kGreen, kBlue };

constexpr NamedValue<Color> kColorNames[] = {
    {Color::kRed, "red"},
    {Color::kGreen, "green"},
};

TEST(EnumNames, NameOfListedValueAndFallbackForOthers) {
  EXPECT_EQ(std::string_view(NameOf(kColorNames, Color::kGreen, "?")), "green");
  EXPECT_EQ(std::string_view(NameOf(kColorNames, Color::kBlue, "?")), "?");
  EXPECT_EQ(NameOf(kColorNames, Color::kBlue, nullptr), nullptr);
}

TEST(EnumNames, ValueNamedIsExactAndCaseSensitive) {
  EXPECT_EQ(ValueNamed(kColorNames, "red"), Color::kRed);
  EXPECT_EQ(ValueNamed(kColorNames, "Red"), std::nullopt);
  EXPECT_EQ(ValueNamed(kColorNames, "re"), std::nullopt);
  EXPECT_EQ(ValueNamed(kColorNames, ""), std::nullopt);
}

TEST(EnumNames, WorksAtCompileTime) {
  static_assert(ValueNamed(kColorNames, "green") == Color::kGreen);
  static_assert(NameOf(kColorNames, Color::kRed, nullptr)[0] == 'r');
}

}  // namespace
}  // namespace vmm
