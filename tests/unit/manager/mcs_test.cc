#include "vmm/manager/mcs.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace vmm {
namespace {

TEST(McsPair, LevelSpellsTheTwoCategories) { EXPECT_EQ((McsPair{12, 345}).Level(), "s0:c12,c345"); }

TEST(McsPair, ParsesAContextOrALevel) {
  EXPECT_EQ(ParseMcsPair("system_u:system_r:vmm_vcpu_t:s0:c12,c34"), (McsPair{12, 34}));
  EXPECT_EQ(ParseMcsPair("s0:c1023,c0"), (McsPair{0, 1023}));
  EXPECT_EQ(ParseMcsPair(std::string_view("system_u:system_r:vmm_vtpm_t:s0:c5,c6\n\0", 40)),
            (McsPair{5, 6}));
}

TEST(McsPair, RefusesWhatIsNotOnePair) {
  for (const char* s : {"s0", "system_u:system_r:vmm_vcpu_t:s0", "s0:c1", "s0:c1,c1", "s0:c1,c2,c3",
                        "s0-s0:c0.c1023", "s0:c0.c3", "s0:c1,c1024", "s0:c-1,c2", "s0:c1,c2x",
                        "s0:1,2", "s0:c,c2", "", "xs0:c1,c2"}) {
    EXPECT_FALSE(ParseMcsPair(s).has_value()) << s;
  }
}

TEST(McsPair, PickAvoidsPairsInUse) {
  // A "random" source that first proposes (3,7) in both orders and (5,5), all to be refused.
  std::vector<uint32_t> seq = {3, 7, 7, 3, 5, 5, 1, 2};
  size_t i = 0;
  auto fake = [&](uint32_t n) {
    EXPECT_EQ(n, static_cast<uint32_t>(kMcsCategories));
    return seq[i++ % seq.size()];
  };
  auto p = PickMcsPair({{3, 7}}, fake);
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(*p, (McsPair{1, 2}));
}

TEST(McsPair, PickFindsTheLastFreePair) {
  std::set<McsPair> used;
  for (int a = 0; a < kMcsCategories; ++a) {
    for (int b = a + 1; b < kMcsCategories; ++b) {
      if (!(a == 500 && b == 501)) used.insert({a, b});
    }
  }
  auto p = PickMcsPair(used, RandomBelow);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (McsPair{500, 501}));
  used.insert({500, 501});
  EXPECT_FALSE(PickMcsPair(used, RandomBelow).has_value());
}

TEST(McsPair, RandomPicksAreValidAndVary) {
  std::set<McsPair> seen;
  for (int i = 0; i < 50; ++i) {
    auto p = PickMcsPair({}, RandomBelow);
    ASSERT_TRUE(p.has_value());
    EXPECT_GE(p->low, 0);
    EXPECT_LT(p->low, p->high);
    EXPECT_LT(p->high, kMcsCategories);
    seen.insert(*p);
  }
  EXPECT_GT(seen.size(), 40u);
}

TEST(McsPair, InUseReadsRoleDomainsFromProc) {
  char tmpl[] = "/tmp/mcs_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::filesystem::path root(tmpl);
  auto proc = [&](const char* pid, const std::string& context) {
    std::filesystem::create_directories(root / pid / "attr");
    std::ofstream(root / pid / "attr" / "current", std::ios::binary)
        .write(context.data(), static_cast<std::streamsize>(context.size()));
  };
  static constexpr char kWithNul[] = "system_u:system_r:vmm_device_blk_t:s0:c1,c2";
  proc("10", std::string(kWithNul, sizeof(kWithNul)));  // as the kernel gives it: NUL-terminated
  proc("11", "system_u:system_r:vmm_vtpm_t:s0:c9,c3");
  proc("12", "system_u:system_r:vmm_manager_t:s0:c4,c5");  // the manager holds no pair
  proc("13", "system_u:system_r:svirt_t:s0:c6,c7");        // not ours
  proc("14", "system_u:system_r:vmm_vcpu_t:s0-s0:c0.c1023");
  std::filesystem::create_directories(root / "15");       // ended: no attr
  proc("self", "system_u:system_r:vmm_vcpu_t:s0:c8,c9");  // not a pid
  EXPECT_EQ(McsPairsInUse(root), (std::set<McsPair>{{1, 2}, {3, 9}}));
  std::filesystem::remove_all(root);
  EXPECT_TRUE(McsPairsInUse(root).empty());
}

TEST(McsPair, WithLevelReplacesOnlyTheLevel) {
  EXPECT_EQ(WithLevel("system_u:system_r:vmm_manager_t:s0-s0:c0.c1023", "s0:c1,c2"),
            "system_u:system_r:vmm_manager_t:s0:c1,c2");
  EXPECT_EQ(WithLevel("u:r:t:s0", "s0:c3,c4"), "u:r:t:s0:c3,c4");
  EXPECT_FALSE(WithLevel("u:r:t", "s0:c1,c2").has_value());
}

TEST(McsPair, LabellingIsANoteWhereSelinuxIsOff) {
  if (SelinuxEnabled()) GTEST_SKIP() << "SELinux is enabled on this host";
  auto r = LabelVmFile(0, "vmm_image_t", "s0:c1,c2");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "SELinux off");
}

}  // namespace
}  // namespace vmm
