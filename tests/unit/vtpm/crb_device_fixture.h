// The CrbDevice test fixture: a device over a 4 KiB shared page with a FakeCrbBackend, and
// the guest's register accesses as one-liners.
//
//   TEST_F(CrbDevice, X) { Ready(); Put(Command(12)); W32(kCrbCtrlStart, kCrbStart); }
//   // the fixture is named after the device; the device type is spelled vtpm::CrbDevice
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "vmm/vm/tpm_crb/crb_backend_fake.h"
#include "vmm/vm/tpm_crb/crb_device.h"

namespace vtpm_test {

using namespace vtpm;

inline constexpr uint64_t kGpa = kCrbSuggestedBufferGpa;

inline std::vector<uint8_t> Command(uint32_t size, size_t bytes = 0) {
  std::vector<uint8_t> c(bytes ? bytes : size, 0xA5);
  c[0] = 0x80;
  c[1] = 0x01;
  for (int i = 0; i < 4; ++i) c[2 + i] = static_cast<uint8_t>(size >> (24 - 8 * i));
  return c;
}

inline uint32_t Rc(std::span<const uint8_t> r) {
  return (uint32_t{r[6]} << 24) | (uint32_t{r[7]} << 16) | (uint32_t{r[8]} << 8) | r[9];
}

class CrbDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    auto crb = vtpm::CrbDevice::Create(kGpa, page_, backend_);
    ASSERT_TRUE(crb.has_value()) << crb.error().message();
    crb_ = std::move(*crb);
    backend_.device = crb_.get();
  }

  uint64_t Read(uint64_t off, size_t width) {
    uint8_t b[8] = {};
    crb_->Read(off, std::span(b, width));
    uint64_t v = 0;
    std::memcpy(&v, b, width);
    return v;
  }
  uint32_t R32(uint64_t off) { return static_cast<uint32_t>(Read(off, 4)); }
  void Write(uint64_t off, uint64_t v, size_t width) {
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    crb_->Write(off, std::span<const uint8_t>(b, width));
  }
  void W32(uint64_t off, uint32_t v) { Write(off, v, 4); }
  void Ready() {
    W32(kCrbLocCtrl, kCrbLocCtrlRequestAccess);
    W32(kCrbCtrlReq, kCrbCtrlReqCmdReady);
  }
  void Put(const std::vector<uint8_t>& bytes) {
    std::memcpy(page_.data(), bytes.data(), bytes.size());
  }
  void StartCommand(uint32_t size = 12) {
    Ready();
    Put(Command(size));
    W32(kCrbCtrlStart, kCrbStart);
  }

  std::vector<uint8_t> page_ = std::vector<uint8_t>(kCrbSuggestedBufferSize);
  FakeCrbBackend backend_;
  std::unique_ptr<vtpm::CrbDevice> crb_;
};

}  // namespace vtpm_test
