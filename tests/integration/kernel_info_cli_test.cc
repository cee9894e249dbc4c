// tools/kernel-info as scripts/make-default-guest.sh runs it: key=value lines for a good
// image, exit status 2 and the parser's reason for a bad one.
#include <gtest/gtest.h>

#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"
#include "tests/unit/common/expect_text.h"

namespace vmm::testing {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

ProcessResult KernelInfo(const std::string& file) {
  return RunProcess({BinDir() + "/kernel-info", file}, 10);
}

TEST(KernelInfoCli, PvhElfPrintsItsEntryAndFirstLoadAddress) {
  ProcessResult r = KernelInfo(WriteTempFile("vmlinux", MakePvhElf()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "format=pvh-elf64\nentry=0x100000\npvh_entry=0x100000\nfirst_load_vaddr=0x100000\n");
  EXPECT_EQ(r.err, "");
}

TEST(KernelInfoCli, Elf32IsNamedAsSuch) {
  ProcessResult r = KernelInfo(WriteTempFile("vmlinux32", MakePvhElf32()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("format=pvh-elf32\n", 0), 0u) << r.out;
}

TEST(KernelInfoCli, BzImagePrintsProtocolAndPayload) {
  BzSpec spec;
  spec.payload_offset = 0x10;
  spec.payload_length = 0x100;
  std::vector<uint8_t> image = MakeBzImage(spec);
  const size_t payload = 1024 + 0x10;  // setup_sects 1: the kernel starts at 1024
  const uint8_t lz4[] = {0x02, 0x21, 0x4c, 0x18};
  std::copy(std::begin(lz4), std::end(lz4), image.begin() + payload);
  const uint32_t output_size = 0x123456;
  std::memcpy(image.data() + payload + 0x100 - 4, &output_size, 4);
  ProcessResult r = KernelInfo(WriteTempFile("vmlinuz", image));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "format=bzimage\nentry=0x100200\nprotocol=2.15\npayload_offset=1040\n"
            "payload_length=256\npayload_format=lz4\npayload_output_size=1193046\n");
}

TEST(KernelInfoCli, BzImageWithoutPayloadPrintsNoPayloadKeys) {
  ProcessResult r = KernelInfo(WriteTempFile("vmlinuz-nopayload", MakeBzImage()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "format=bzimage\nentry=0x100200\nprotocol=2.15\n");
}

TEST(KernelInfoCli, BadImageExitsTwoWithTheReason) {
  ElfSpec spec;
  spec.with_pvh_note = false;
  ProcessResult r = KernelInfo(WriteTempFile("no-pvh-note", MakePvhElf(spec)));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  ExpectContainsAll(r.err, {"kernel-info: ", "no PVH entry note"});

  ProcessResult junk = KernelInfo(WriteTempFile("junk", std::vector<uint8_t>(4096, 0x5A)));
  EXPECT_EQ(junk.exit_code, 2);
  EXPECT_NE(junk.err.find("not a kernel this VMM can boot"), std::string::npos) << junk.err;
}

TEST(KernelInfoCli, MissingFileAndUsageErrors) {
  ProcessResult missing = KernelInfo("/nonexistent/vmlinux");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
  ProcessResult usage = RunProcess({BinDir() + "/kernel-info"}, 10);
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.err.find("usage"), std::string::npos) << usage.err;
}

}  // namespace
}  // namespace vmm::testing
