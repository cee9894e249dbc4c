#include "vmm/vm/devices/uart/uart16550.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vmm::devices {
namespace {

class UartTest : public ::testing::Test {
 protected:
  uint8_t In(uint64_t reg) {
    uint8_t v = 0;
    uart_.Read(reg, std::span<uint8_t>(&v, 1));
    return v;
  }
  void Out(uint64_t reg, uint8_t v) { uart_.Write(reg, std::span<const uint8_t>(&v, 1)); }

  std::string out_;
  std::vector<bool> irq_;
  Uart16550 uart_{[this](uint8_t b) { out_.push_back(static_cast<char>(b)); },
                  [this](bool level) { irq_.push_back(level); }};
};

TEST_F(UartTest, TransmitGoesToTheSink) {
  for (char c : std::string("hi\n")) Out(0, static_cast<uint8_t>(c));
  EXPECT_EQ(out_, "hi\n");
  EXPECT_EQ(In(5) & 0x60, 0x60);  // THRE and TEMT: always ready
}

TEST_F(UartTest, ScratchRegisterHoldsAValue) {
  Out(7, 0xA5);
  EXPECT_EQ(In(7), 0xA5);
  Out(7, 0x5A);
  EXPECT_EQ(In(7), 0x5A);
}

TEST_F(UartTest, DivisorLatchIsSeparateFromDataAndIer) {
  Out(3, 0x80);  // DLAB
  Out(0, 0x01);
  Out(1, 0x02);
  EXPECT_EQ(In(0), 0x01);
  EXPECT_EQ(In(1), 0x02);
  Out(3, 0x03);
  EXPECT_EQ(In(1), 0x00);  // IER untouched
  EXPECT_TRUE(out_.empty());
}

TEST_F(UartTest, FifoEnableIdentifiesA16550A) {
  EXPECT_EQ(In(2) & 0xC0, 0x00);
  Out(2, 0x07);
  EXPECT_EQ(In(2) & 0xC0, 0xC0);
}

TEST_F(UartTest, LoopbackEchoesDataAndModemLines) {
  Out(4, 0x10 | 0x08 | 0x02);     // LOOP | OUT2 | RTS, as Linux's autoconfig writes
  EXPECT_EQ(In(6) & 0xF0, 0x90);  // DCD | CTS
  Out(0, 0x42);
  EXPECT_TRUE(out_.empty());
  EXPECT_EQ(In(5) & 0x01, 0x01);
  EXPECT_EQ(In(0), 0x42);
  EXPECT_EQ(In(5) & 0x01, 0x00);
}

TEST_F(UartTest, EnablingThreInterruptRaisesItAtOnce) {
  Out(1, 0x02);
  ASSERT_FALSE(irq_.empty());
  EXPECT_TRUE(irq_.back());
  EXPECT_EQ(In(2) & 0x0F, 0x02);  // THRE pending; reading IIR acknowledges it
  EXPECT_FALSE(irq_.back());
  EXPECT_EQ(In(2) & 0x01, 0x01);
  Out(0, 'x');  // the byte leaves at once: THRE again
  EXPECT_TRUE(irq_.back());
}

TEST_F(UartTest, ReceivedDataRaisesRdaInterrupt) {
  Out(1, 0x01);
  uint8_t bytes[] = {'a', 'b'};
  EXPECT_EQ(uart_.Receive(bytes), 2u);
  EXPECT_TRUE(irq_.back());
  EXPECT_EQ(In(2) & 0x0F, 0x04);
  EXPECT_EQ(In(0), 'a');
  EXPECT_EQ(In(0), 'b');
  EXPECT_FALSE(irq_.back());
}

TEST_F(UartTest, ReceiveFifoIsBounded) {
  std::vector<uint8_t> many(100, 'z');
  EXPECT_EQ(uart_.Receive(many), Uart16550::kFifoSize);
}

TEST_F(UartTest, WideAccessesDoNotOverrun) {
  uint8_t buf[4] = {};
  uart_.Read(7, buf);
  EXPECT_EQ(buf[1], 0xFF);
  uart_.Write(0, std::span<const uint8_t>());  // empty write is ignored
  EXPECT_TRUE(out_.empty());
}

}  // namespace
}  // namespace vmm::devices
