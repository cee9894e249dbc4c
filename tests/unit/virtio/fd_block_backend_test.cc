#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/unit/virtio/blk_fixture.h"
#include "vmm/device/blk/blk.h"
#include "vmm/device/blk/block_backend.h"

namespace vmm::virtio {
namespace {

// A temporary image file of `size` bytes, each byte its offset mod 251; removed at the end.
class TempImage {
 public:
  explicit TempImage(size_t size) {
    path_ = ::testing::TempDir() + "virtio_blk_image_XXXXXX";
    int fd = mkstemp(path_.data());
    EXPECT_GE(fd, 0);
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i % 251);
    EXPECT_EQ(write(fd, bytes.data(), size), static_cast<ssize_t>(size));
    close(fd);
  }
  ~TempImage() { unlink(path_.c_str()); }
  UniqueFd Open(int flags) const { return UniqueFd(open(path_.c_str(), flags | O_CLOEXEC)); }
  std::vector<uint8_t> Contents() const {
    UniqueFd fd = Open(O_RDONLY);
    struct stat st;
    fstat(fd.get(), &st);
    std::vector<uint8_t> out(st.st_size);
    EXPECT_EQ(pread(fd.get(), out.data(), out.size(), 0), st.st_size);
    return out;
  }

 private:
  std::string path_;
};

TEST(FdBlockBackend, ReadsWritesAndFlushesAFile) {
  TempImage img(8192);
  auto disk = FdBlockBackend::Create(img.Open(O_RDWR), false);
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  EXPECT_EQ((*disk)->size(), 8192u);
  EXPECT_FALSE((*disk)->read_only());
  std::vector<uint8_t> buf(100);
  ASSERT_TRUE((*disk)->ReadAt(1000, buf).has_value());
  EXPECT_EQ(buf[0], 1000 % 251);
  std::vector<uint8_t> data(512, 0xCD);
  ASSERT_TRUE((*disk)->WriteAt(4096, data).has_value());
  ASSERT_TRUE((*disk)->Flush().has_value());
  EXPECT_EQ(img.Contents()[4096], 0xCD);
  EXPECT_EQ(img.Contents()[4096 + 512], (4096 + 512) % 251);
}

TEST(FdBlockBackend, RefusesAccessOutsideTheImageAndNeverGrowsIt) {
  TempImage img(4096);
  auto disk = FdBlockBackend::Create(img.Open(O_RDWR), false);
  ASSERT_TRUE(disk.has_value());
  std::vector<uint8_t> buf(16, 0xEE);
  EXPECT_FALSE((*disk)->WriteAt(4090, buf).has_value());
  EXPECT_FALSE((*disk)->WriteAt(UINT64_MAX - 4, buf).has_value());
  EXPECT_FALSE((*disk)->ReadAt(4096, buf).has_value());
  EXPECT_FALSE((*disk)->ReadAt(UINT64_MAX, buf).has_value());
  auto contents = img.Contents();
  EXPECT_EQ(contents.size(), 4096u);
  EXPECT_EQ(contents[4090], 4090 % 251);
}

TEST(FdBlockBackend, ReadOnlyRefusesWritesEvenOnAWritableFd) {
  TempImage img(4096);
  auto disk = FdBlockBackend::Create(img.Open(O_RDWR), /*read_only=*/true);
  ASSERT_TRUE(disk.has_value());
  EXPECT_TRUE((*disk)->read_only());
  std::vector<uint8_t> buf(512, 0xEE);
  EXPECT_FALSE((*disk)->WriteAt(0, buf).has_value());
  EXPECT_EQ(img.Contents()[0], 0);
}

TEST(FdBlockBackend, ReadFailingWithEofReportsAnError) {
  TempImage img(4096);
  auto disk = FdBlockBackend::Create(img.Open(O_RDWR), false);
  ASSERT_TRUE(disk.has_value());
  // The image shrinks behind our back: a read inside the recorded size hits end of file.
  UniqueFd other = img.Open(O_RDWR);
  ASSERT_EQ(ftruncate(other.get(), 1024), 0);
  std::vector<uint8_t> buf(512);
  EXPECT_FALSE((*disk)->ReadAt(2048, buf).has_value());
}

TEST(FdBlockBackend, RefusesNonFilesAndInvalidFds) {
  EXPECT_FALSE(FdBlockBackend::Create(UniqueFd(), false).has_value());
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[1]);
  EXPECT_FALSE(FdBlockBackend::Create(UniqueFd(p[0]), false).has_value());
  UniqueFd dir(open(::testing::TempDir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir.valid());
  EXPECT_FALSE(FdBlockBackend::Create(std::move(dir), false).has_value());
}

TEST(FdBlockBackend, ServesVirtioBlkRequestsEndToEnd) {
  TempImage img(64 * 1024);
  auto disk = FdBlockBackend::Create(img.Open(O_RDWR), false);
  ASSERT_TRUE(disk.has_value());
  auto blk = BlkDevice::Create(**disk, {.serial = "e2e"});
  ASSERT_TRUE(blk.has_value());
  FakeGuestRam mem(1 << 20);
  testing::FakeDriver drv(mem, 8);
  uint64_t h = drv.AllocBytes(testing::BlkHeader(kVirtioBlkTOut, 8));
  uint64_t d = drv.Alloc(1024);
  std::fill_n(mem.At(d, 1024).begin(), 1024, 0x42);
  uint64_t s = drv.Alloc(1);
  drv.Publish(drv.AddChain({{h, 16, false}, {d, 1024, false}, {s, 1, true}}));
  uint64_t h2 = drv.AllocBytes(testing::BlkHeader(kVirtioBlkTFlush, 0));
  uint64_t s2 = drv.Alloc(1);
  drv.Publish(drv.AddChain({{h2, 16, false}, {s2, 1, true}}));
  auto q = SplitQueue::Create(mem.ram(), drv.config(), blk->queue_limits());
  ASSERT_TRUE(q.has_value());
  blk->SetDriverFeatures(blk->features());
  auto run = blk->ProcessQueue(*q);
  ASSERT_TRUE(run.has_value()) << run.error().ToString();
  EXPECT_EQ(run->chains, 2u);
  EXPECT_EQ(mem.Get<uint8_t>(s), kVirtioBlkSOk);
  EXPECT_EQ(mem.Get<uint8_t>(s2), kVirtioBlkSOk);
  auto contents = img.Contents();
  EXPECT_EQ(contents[4096], 0x42);
  EXPECT_EQ(contents[4096 + 1023], 0x42);
  EXPECT_EQ(contents[4096 + 1024], (4096 + 1024) % 251);
}

}  // namespace
}  // namespace vmm::virtio
