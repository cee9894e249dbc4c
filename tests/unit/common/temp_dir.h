// TempDir: a fresh directory under /tmp for one test, removed with everything in it at the
// end, with an O_DIRECTORY fd (for the *at() code under test) and file helpers.
//
//   TempDir dir("vmm-sealed-state");
//   dir.Write("state", bytes);   EXPECT_EQ(dir.Read("state"), bytes);
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"

namespace vmm::testing_util {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "vmm-test") {
    std::string tmpl = "/tmp/" + std::string(prefix) + "-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr) << tmpl;
    path_ = tmpl;
    fd_ = UniqueFd(open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }
  bool Exists(std::string_view name) const {
    return faccessat(fd(), std::string(name).c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  }
  std::vector<uint8_t> Read(std::string_view name) const {
    std::ifstream in(File(name), std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  }
  std::string ReadText(std::string_view name) const {
    std::ifstream in(File(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Unlinks first: ext4 flushes a file truncated and rewritten on close (auto_da_alloc).
  void Write(std::string_view name, std::span<const uint8_t> bytes) const {
    unlinkat(fd(), std::string(name).c_str(), 0);
    std::ofstream out(File(name), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  void WriteText(std::string_view name, const std::string& text) const {
    std::ofstream out(File(name), std::ios::binary | std::ios::trunc);
    out << text;
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

}  // namespace vmm::testing_util
