#include "vmm/vm/machine/exit_decode.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace vmm {
namespace {

// A kvm_run mapping as KVM_GET_VCPU_MMAP_SIZE gives it on x86 (kvm_run, the PIO data page,
// the coalesced-MMIO ring), filled the way KVM fills it on an exit.
constexpr size_t kMappingSize = 3 * 4096;
constexpr uint64_t kPioOffset = 4096;  // KVM_PIO_PAGE_OFFSET pages

class FakeRunPage {
 public:
  explicit FakeRunPage(size_t size = kMappingSize) : bytes_(size / 8 + 1), size_(size) {}
  kvm_run& run() { return *reinterpret_cast<kvm_run*>(bytes_.data()); }
  std::span<uint8_t> mapping() { return {reinterpret_cast<uint8_t*>(bytes_.data()), size_}; }
  Result<VcpuExit> Decode() { return DecodeExit(mapping()); }
  // Decodes an exit the test expects to decode, and to be a T.
  template <typename T>
  T DecodeAs() {
    return std::get<T>(Decode().value());
  }

  void Io(uint8_t direction, uint16_t port, uint8_t size, uint32_t count, uint64_t offset) {
    run().exit_reason = KVM_EXIT_IO;
    run().io.direction = direction;
    run().io.port = port;
    run().io.size = size;
    run().io.count = count;
    run().io.data_offset = offset;
  }

 private:
  std::vector<uint64_t> bytes_;  // zeroed, and aligned for kvm_run
  size_t size_;
};

TEST(ExitDecode, PortOutPointsAtItsDataInsideTheMapping) {
  FakeRunPage page;
  page.Io(KVM_EXIT_IO_OUT, 0x3F8, 1, 3, kPioOffset);
  std::memcpy(page.mapping().data() + kPioOffset, "abc", 3);
  auto exit = page.Decode();
  ASSERT_TRUE(exit.has_value()) << exit.error().ToString();
  const auto& io = std::get<exits::Io>(*exit);
  EXPECT_EQ(io.port, 0x3F8);
  EXPECT_EQ(io.direction, exits::IoDirection::kOut);
  EXPECT_EQ(io.size, 1);
  EXPECT_EQ(io.count, 3u);
  ASSERT_EQ(io.data.size(), 3u);
  EXPECT_EQ(io.data.data(), page.mapping().data() + kPioOffset);
  EXPECT_EQ(std::memcmp(io.data.data(), "abc", 3), 0);
}

TEST(ExitDecode, PortInDataIsWritableInPlace) {
  FakeRunPage page;
  page.Io(KVM_EXIT_IO_IN, 0x60, 4, 1, kPioOffset);
  auto exit = page.Decode();
  ASSERT_TRUE(exit.has_value());
  auto& io = std::get<exits::Io>(*exit);
  EXPECT_EQ(io.direction, exits::IoDirection::kIn);
  io.data[0] = 0x5A;
  EXPECT_EQ(page.mapping()[kPioOffset], 0x5A);
}

TEST(ExitDecode, PortDataMayEndExactlyAtTheMappingEnd) {
  FakeRunPage page;
  page.Io(KVM_EXIT_IO_OUT, 0x80, 2, 4, kMappingSize - 8);
  auto exit = page.Decode();
  ASSERT_TRUE(exit.has_value()) << exit.error().ToString();
  EXPECT_EQ(std::get<exits::Io>(*exit).data.size(), 8u);
}

TEST(ExitDecode, PortZeroCountIsAnEmptyAccess) {
  FakeRunPage page;
  page.Io(KVM_EXIT_IO_OUT, 0x80, 1, 0, kPioOffset);
  auto exit = page.Decode();
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(std::get<exits::Io>(*exit).data.empty());
}

TEST(ExitDecode, PortAccessSizesOtherThanOneTwoFourAreErrors) {
  for (uint8_t size : {0, 3, 5, 8, 255}) {
    FakeRunPage page;
    page.Io(KVM_EXIT_IO_OUT, 0x80, size, 1, kPioOffset);
    auto exit = page.Decode();
    ASSERT_FALSE(exit.has_value()) << "size " << int{size};
    EXPECT_EQ(exit.error().kind(), ErrorKind::kKvm);
    EXPECT_NE(exit.error().message().find("malformed KVM_EXIT_IO"), std::string::npos);
  }
}

TEST(ExitDecode, PortBadDirectionIsAnError) {
  FakeRunPage page;
  page.Io(2, 0x80, 1, 1, kPioOffset);
  EXPECT_FALSE(page.Decode().has_value());
}

TEST(ExitDecode, PortDataOutsideTheMappingIsAnError) {
  const uint64_t offsets[] = {
      0, sizeof(kvm_run) - 1, kMappingSize, kMappingSize - 3, ~uint64_t{0}, ~uint64_t{0} - 3};
  for (uint64_t offset : offsets) {
    FakeRunPage page;
    page.Io(KVM_EXIT_IO_IN, 0x80, 4, 1, offset);
    EXPECT_FALSE(page.Decode().has_value()) << "offset " << offset;
  }
}

TEST(ExitDecode, PortCountTimesSizeBeyondTheMappingIsAnError) {
  FakeRunPage page;
  page.Io(KVM_EXIT_IO_OUT, 0x80, 4, 0xFFFFFFFFu, kPioOffset);
  EXPECT_FALSE(page.Decode().has_value());
  page.Io(KVM_EXIT_IO_OUT, 0x80, 4, (kMappingSize - kPioOffset) / 4 + 1, kPioOffset);
  EXPECT_FALSE(page.Decode().has_value());
}

TEST(ExitDecode, PortDataIsCheckedAgainstTheRealMappingSize) {
  // The same exit fits a 3-page mapping but not a 2-page one.
  FakeRunPage small(2 * 4096);
  small.Io(KVM_EXIT_IO_OUT, 0x80, 1, 1, 2 * 4096 + 16);
  EXPECT_FALSE(small.Decode().has_value());
  FakeRunPage big;
  big.Io(KVM_EXIT_IO_OUT, 0x80, 1, 1, 2 * 4096 + 16);
  EXPECT_TRUE(big.Decode().has_value());
}

TEST(ExitDecode, MappingSmallerThanKvmRunIsAnError) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_HLT;
  EXPECT_FALSE(DecodeExit(page.mapping().first(sizeof(kvm_run) - 1)).has_value());
  EXPECT_FALSE(DecodeExit({}).has_value());
}

TEST(ExitDecode, MmioWriteAndRead) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_MMIO;
  page.run().mmio.phys_addr = 0xFED40000;
  page.run().mmio.len = 4;
  page.run().mmio.is_write = 1;
  std::memcpy(page.run().mmio.data, "\x01\x02\x03\x04", 4);
  auto exit = page.Decode();
  ASSERT_TRUE(exit.has_value());
  auto& m = std::get<exits::Mmio>(*exit);
  EXPECT_EQ(m.addr, 0xFED40000u);
  EXPECT_TRUE(m.is_write);
  ASSERT_EQ(m.data.size(), 4u);
  EXPECT_EQ(m.data[3], 0x04);

  page.run().mmio.is_write = 0;
  page.run().mmio.len = 8;
  exit = page.Decode();
  ASSERT_TRUE(exit.has_value());
  auto& r = std::get<exits::Mmio>(*exit);
  EXPECT_FALSE(r.is_write);
  ASSERT_EQ(r.data.size(), 8u);
  r.data[7] = 0xEE;  // a read's result goes back into the run page
  EXPECT_EQ(page.run().mmio.data[7], 0xEE);
}

TEST(ExitDecode, MmioLengthZeroOrAboveEightIsAnError) {
  for (uint32_t len : {0u, 9u, 16u, 0xFFFFFFFFu}) {
    FakeRunPage page;
    page.run().exit_reason = KVM_EXIT_MMIO;
    page.run().mmio.len = len;
    auto exit = page.Decode();
    ASSERT_FALSE(exit.has_value()) << "len " << len;
    EXPECT_NE(exit.error().message().find("malformed KVM_EXIT_MMIO"), std::string::npos);
  }
}

TEST(ExitDecode, ReasonsWithoutPayload) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_SHUTDOWN;
  EXPECT_TRUE(std::holds_alternative<exits::Shutdown>(page.Decode().value()));
  page.run().exit_reason = KVM_EXIT_HLT;
  EXPECT_TRUE(std::holds_alternative<exits::Hlt>(page.Decode().value()));
  page.run().exit_reason = KVM_EXIT_INTR;
  EXPECT_TRUE(std::holds_alternative<exits::Intr>(page.Decode().value()));
}

TEST(ExitDecode, FailEntryCarriesTheHardwareReason) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_FAIL_ENTRY;
  page.run().fail_entry.hardware_entry_failure_reason = 0x80000021;
  page.run().fail_entry.cpu = 1;
  auto f = page.DecodeAs<exits::FailEntry>();
  EXPECT_EQ(f.hardware_reason, 0x80000021u);
  EXPECT_EQ(f.cpu, 1u);
}

TEST(ExitDecode, InternalErrorDataIsClampedToKvmRunsArray) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_INTERNAL_ERROR;
  page.run().internal.suberror = KVM_INTERNAL_ERROR_DELIVERY_EV;
  page.run().internal.ndata = 2;
  page.run().internal.data[0] = 7;
  page.run().internal.data[1] = 9;
  auto e = page.DecodeAs<exits::InternalError>();
  EXPECT_EQ(e.suberror, static_cast<uint32_t>(KVM_INTERNAL_ERROR_DELIVERY_EV));
  EXPECT_EQ(e.data, (std::vector<uint64_t>{7, 9}));
  EXPECT_FALSE(e.has_insn_bytes);

  page.run().internal.ndata = 0xFFFFFFFF;
  EXPECT_EQ(page.DecodeAs<exits::InternalError>().data.size(), 16u);
}

TEST(ExitDecode, EmulationFailureCarriesAtMostFifteenInstructionBytes) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_INTERNAL_ERROR;
  page.run().emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
  page.run().emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
  page.run().emulation_failure.insn_size = 2;
  page.run().emulation_failure.insn_bytes[0] = 0x0F;
  page.run().emulation_failure.insn_bytes[1] = 0x01;
  auto e = page.DecodeAs<exits::InternalError>();
  EXPECT_TRUE(e.has_insn_bytes);
  EXPECT_EQ(e.insn_bytes, (std::vector<uint8_t>{0x0F, 0x01}));

  page.run().emulation_failure.insn_size = 255;
  EXPECT_EQ(page.DecodeAs<exits::InternalError>().insn_bytes.size(), 15u);
}

TEST(ExitDecode, SystemEventType) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_SYSTEM_EVENT;
  page.run().system_event.type = KVM_SYSTEM_EVENT_RESET;
  EXPECT_EQ(page.DecodeAs<exits::SystemEvent>().type,
            static_cast<uint32_t>(KVM_SYSTEM_EVENT_RESET));
}

TEST(ExitDecode, MsrAccesses) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_X86_RDMSR;
  page.run().msr.index = 0xC0000080;
  page.run().msr.reason = KVM_MSR_EXIT_REASON_FILTER;
  auto rd = page.DecodeAs<exits::X86Rdmsr>();
  EXPECT_EQ(rd.index, 0xC0000080u);
  EXPECT_EQ(rd.reason, static_cast<uint32_t>(KVM_MSR_EXIT_REASON_FILTER));

  page.run().exit_reason = KVM_EXIT_X86_WRMSR;
  page.run().msr.data = 0xD01;
  auto wr = page.DecodeAs<exits::X86Wrmsr>();
  EXPECT_EQ(wr.index, 0xC0000080u);
  EXPECT_EQ(wr.data, 0xD01u);
}

TEST(ExitDecode, DebugCarriesExceptionPcAndDebugRegisters) {
  FakeRunPage page;
  page.run().exit_reason = KVM_EXIT_DEBUG;
  page.run().debug.arch.exception = 1;
  page.run().debug.arch.pc = 0xFFFFFFFF81000000;
  page.run().debug.arch.dr6 = 0xFFFF0FF1;
  page.run().debug.arch.dr7 = 0x401;
  auto d = page.DecodeAs<exits::Debug>();
  EXPECT_EQ(d.exception, 1u);
  EXPECT_EQ(d.pc, 0xFFFFFFFF81000000u);
  EXPECT_EQ(d.dr6, 0xFFFF0FF1u);
  EXPECT_EQ(d.dr7, 0x401u);
}

TEST(ExitDecode, OtherReasonsAreUnknown) {
  for (uint32_t reason : {uint32_t{KVM_EXIT_UNKNOWN}, uint32_t{KVM_EXIT_HYPERCALL},
                          uint32_t{KVM_EXIT_IRQ_WINDOW_OPEN}, 0xFFFFFFFFu}) {
    FakeRunPage page;
    page.run().exit_reason = reason;
    auto exit = page.Decode();
    ASSERT_TRUE(exit.has_value());
    EXPECT_EQ(std::get<exits::Unknown>(*exit).reason, reason);
  }
}

}  // namespace
}  // namespace vmm
