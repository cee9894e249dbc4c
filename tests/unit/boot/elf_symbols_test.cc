#include "vmm/vm/boot/elf_symbols.h"

#include <gtest/gtest.h>

#include <string>

namespace vmm::boot {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(SystemMap, TextSymbolsNameAddresses) {
  std::string map =
      "ffffffff81000000 T _text\n"
      "ffffffff81001000 t do_idle\n"
      "ffffffff81002000 D some_data\n"
      "garbage line\n"
      "ffffffff81003000 T cpu_startup_entry\n";
  auto syms = ReadSymbols(Bytes(map));
  ASSERT_TRUE(syms.has_value()) << syms.error().message();
  EXPECT_EQ(syms->size(), 3u);
  EXPECT_EQ(syms->Describe(0xffffffff8100102aull), "do_idle+0x2a");
  EXPECT_EQ(syms->Describe(0xffffffff81003000ull), "cpu_startup_entry+0x0");
  EXPECT_EQ(syms->Describe(0x1000), "0x1000");
}

TEST(SystemMap, NothingUsableIsAnError) {
  EXPECT_FALSE(ReadSymbols(Bytes("hello\nworld\n")).has_value());
  EXPECT_FALSE(ReadSymbols({}).has_value());
}

TEST(ElfSymbols, TruncatedElfIsRejected) {
  std::string elf =
      "\x7f"
      "ELF\x02\x01\x01";
  elf.resize(100, '\0');
  EXPECT_FALSE(ReadSymbols(Bytes(elf)).has_value());
}

TEST(SystemMap, CandidatesBesideTheKernelMostSpecificFirst) {
  EXPECT_EQ(
      SystemMapCandidates("/boot/vmlinuz-6.1.0-28-cloud-amd64"),
      (std::vector<std::string>{"/boot/System.map-6.1.0-28-cloud-amd64", "/boot/System.map"}));
  EXPECT_EQ(SystemMapCandidates("build/default-guest/vmlinux"),
            (std::vector<std::string>{"build/default-guest/System.map"}));
  EXPECT_EQ(SystemMapCandidates("vmlinux-6.1"),
            (std::vector<std::string>{"System.map-6.1", "System.map"}));
  EXPECT_EQ(SystemMapCandidates("/boot/vmlinuz-"), (std::vector<std::string>{"/boot/System.map"}));
  EXPECT_TRUE(SystemMapCandidates("/boot/").empty());
}

}  // namespace
}  // namespace vmm::boot
