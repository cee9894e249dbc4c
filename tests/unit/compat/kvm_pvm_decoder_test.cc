#include "vmm/vm/compat/kvm_pvm/decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/compat/pvm_test_util.h"

namespace vmm::compat::pvm {
namespace {

using test_util::LongModeState;

DecodeResult D(std::vector<uint8_t> bytes) { return Decode(bytes, LongModeState()); }

Decoded Ok(std::vector<uint8_t> bytes) {
  DecodeResult r = D(bytes);
  if (auto* u = std::get_if<Undecodable>(&r)) {
    ADD_FAILURE() << u->Message();
    return {};
  }
  return std::get<Decoded>(r);
}

Undecodable::Reason Rejected(std::vector<uint8_t> bytes) {
  DecodeResult r = D(bytes);
  if (auto* u = std::get_if<Undecodable>(&r)) return u->reason;
  ADD_FAILURE() << "decoded as " << OpName(std::get<Decoded>(r).op);
  return Undecodable::Reason::kNot64BitMode;
}

TEST(PvmDecoder, OneByteInstructions) {
  EXPECT_EQ(Ok({0xCC}).op, Op::kInt3);
  EXPECT_EQ(Ok({0xCC}).length, 1);
  EXPECT_EQ(Ok({0x9B}).op, Op::kFwait);
  EXPECT_EQ(Ok({0x9B, 0xDB, 0xE3}).length, 1);  // fwait; fninit is the next instruction
}

TEST(PvmDecoder, ClacStacAreThreeBytes) {
  EXPECT_EQ(Ok({0x0F, 0x01, 0xCA}).op, Op::kClac);
  EXPECT_EQ(Ok({0x0F, 0x01, 0xCB}).op, Op::kStac);
  EXPECT_EQ(Ok({0x0F, 0x01, 0xCB}).length, 3);
  EXPECT_EQ(Ok({0x48, 0x0F, 0x01, 0xCA}).length, 4);  // REX is harmless
}

TEST(PvmDecoder, ClacWithMandatoryPrefixIsAnotherInstruction) {
  EXPECT_EQ(Rejected({0xF3, 0x0F, 0x01, 0xCA}), Undecodable::Reason::kUnsupported);  // ERETU
  EXPECT_EQ(Rejected({0xF2, 0x0F, 0x01, 0xCA}), Undecodable::Reason::kUnsupported);  // ERETS
  EXPECT_EQ(Rejected({0x66, 0x0F, 0x01, 0xCB}), Undecodable::Reason::kUnsupported);
  EXPECT_EQ(Rejected({0x0F, 0x01, 0xC8}), Undecodable::Reason::kUnsupported);  // monitor
}

TEST(PvmDecoder, PopcntOperandSizesFromPrefixes) {
  Decoded d = Ok({0xF3, 0x0F, 0xB8, 0xC1});  // popcnt eax, ecx
  EXPECT_EQ(d.op, Op::kPopcnt);
  EXPECT_EQ(d.length, 4);
  EXPECT_EQ(d.operand_size, 32);
  EXPECT_FALSE(d.has_memory);
  EXPECT_EQ(d.reg, kRax);
  EXPECT_EQ(d.rm, kRcx);
  EXPECT_EQ(Ok({0x66, 0xF3, 0x0F, 0xB8, 0xC1}).operand_size, 16);
  EXPECT_EQ(Ok({0xF3, 0x66, 0x0F, 0xB8, 0xC1}).operand_size, 16);  // order is free
  EXPECT_EQ(Ok({0xF3, 0x48, 0x0F, 0xB8, 0xC1}).operand_size, 64);
  EXPECT_EQ(Ok({0x66, 0xF3, 0x48, 0x0F, 0xB8, 0xC1}).operand_size, 64);  // REX.W beats 66
  Decoded r = Ok({0xF3, 0x4D, 0x0F, 0xB8, 0xC7});                        // popcnt r8, r15
  EXPECT_EQ(r.reg, kR8);
  EXPECT_EQ(r.rm, kR15);
}

TEST(PvmDecoder, RexBeforeALegacyPrefixIsIgnored) {
  Decoded d = Ok({0x48, 0xF3, 0x0F, 0xB8, 0xC1});
  EXPECT_EQ(d.operand_size, 32);
  EXPECT_EQ(d.length, 5);
  EXPECT_EQ(Ok({0x41, 0x48, 0xF3, 0x44, 0x0F, 0xB8, 0xC1}).reg, kR8);  // only the last REX
}

TEST(PvmDecoder, PopcntNeedsF3AndNotF2) {
  EXPECT_EQ(Rejected({0x0F, 0xB8, 0xC1}), Undecodable::Reason::kUnsupported);  // JMPE
  EXPECT_EQ(Rejected({0xF2, 0x0F, 0xB8, 0xC1}), Undecodable::Reason::kUnsupported);
  EXPECT_EQ(Rejected({0xF2, 0xF3, 0x0F, 0xB8, 0xC1}), Undecodable::Reason::kUnsupported);
}

TEST(PvmDecoder, ModRmAddressingForms) {
  Decoded a = Ok({0xF3, 0x48, 0x0F, 0xB8, 0x07});  // [rdi]
  EXPECT_TRUE(a.has_memory);
  EXPECT_EQ(a.mem.base, kRdi);
  EXPECT_EQ(a.mem.index, -1);
  EXPECT_EQ(a.length, 5);
  Decoded b = Ok({0xF3, 0x0F, 0xB8, 0x47, 0xF8});  // [rdi-8]
  EXPECT_EQ(b.mem.disp, -8);
  EXPECT_EQ(b.length, 5);
  Decoded c = Ok({0xF3, 0x0F, 0xB8, 0x87, 0x00, 0x00, 0x00, 0x80});  // [rdi-0x80000000]
  EXPECT_EQ(c.mem.disp, -0x80000000ll);
  EXPECT_EQ(c.length, 8);
  Decoded d = Ok({0xF3, 0x0F, 0xB8, 0x44, 0x8E, 0x10});  // [rsi+rcx*4+0x10]
  EXPECT_EQ(d.mem.base, kRsi);
  EXPECT_EQ(d.mem.index, kRcx);
  EXPECT_EQ(d.mem.scale, 4);
  EXPECT_EQ(d.mem.disp, 0x10);
  EXPECT_EQ(d.length, 6);
  Decoded e = Ok({0xF3, 0x43, 0x0F, 0xB8, 0x04, 0xE4});  // [r12+r12*8] with REX.X and REX.B
  EXPECT_EQ(e.mem.base, kR12);
  EXPECT_EQ(e.mem.index, kR12);
  EXPECT_EQ(e.mem.scale, 8);
  Decoded f = Ok({0xF3, 0x0F, 0xB8, 0x04, 0x24});  // [rsp]: SIB index 100b means none
  EXPECT_EQ(f.mem.base, kRsp);
  EXPECT_EQ(f.mem.index, -1);
  EXPECT_EQ(f.mem.segment, SegReg::kSs);
  Decoded g = Ok({0xF3, 0x0F, 0xB8, 0x04, 0x25, 0x78, 0x56, 0x34, 0x12});  // [disp32]
  EXPECT_EQ(g.mem.base, -1);
  EXPECT_EQ(g.mem.index, -1);
  EXPECT_FALSE(g.mem.rip_relative);
  EXPECT_EQ(g.mem.disp, 0x12345678);
  EXPECT_EQ(g.length, 9);
  Decoded h = Ok({0xF3, 0x41, 0x0F, 0xB8, 0x45, 0x00});  // [r13+0]: DS, not SS
  EXPECT_EQ(h.mem.base, kR13);
  EXPECT_EQ(h.mem.segment, SegReg::kDs);
  EXPECT_EQ(Ok({0xF3, 0x0F, 0xB8, 0x45, 0x00}).mem.segment, SegReg::kSs);  // [rbp+0]
}

TEST(PvmDecoder, RipRelativeEvenWithRexB) {
  Decoded d = Ok({0xF3, 0x41, 0x0F, 0xB8, 0x05, 0x10, 0x00, 0x00, 0x00});
  EXPECT_TRUE(d.mem.rip_relative);
  EXPECT_EQ(d.mem.disp, 0x10);
  EXPECT_EQ(d.length, 9);
  VcpuState s = LongModeState();
  s.rip = 0x1000;
  EXPECT_EQ(EffectiveAddress(d, s), 0x1000u + 9 + 0x10);
}

TEST(PvmDecoder, AddressSizePrefixTruncatesTo32Bits) {
  Decoded d = Ok({0x67, 0xF3, 0x0F, 0xB8, 0x07});  // popcnt eax, [edi]
  EXPECT_EQ(d.mem.address_size, 32);
  VcpuState s = LongModeState();
  s.gpr[kRdi] = 0xFFFFFFFF00001000;
  EXPECT_EQ(EffectiveAddress(d, s), 0x1000u);
  Decoded rip = Ok({0x67, 0xF3, 0x0F, 0xB8, 0x05, 0x00, 0x00, 0x00, 0x00});
  s.rip = 0xFFFFFFFF81000000;
  EXPECT_EQ(EffectiveAddress(rip, s), 0x81000000u + rip.length);
}

TEST(PvmDecoder, FsGsOverridesAddTheirBaseAndOthersAreIgnored) {
  VcpuState s = LongModeState();
  s.fs_base = 0x10000;
  s.gs_base = 0x20000;
  s.ds_base = s.es_base = s.cs_base = s.ss_base = 0x90000;
  s.gpr[kRax] = 0x8;
  Decoded gs = Ok({0x65, 0xF3, 0x0F, 0xB8, 0x00});
  EXPECT_EQ(gs.mem.segment, SegReg::kGs);
  EXPECT_EQ(LinearAddress(gs, s), 0x20008u);
  EXPECT_EQ(LinearAddress(Ok({0x64, 0xF3, 0x0F, 0xB8, 0x00}), s), 0x10008u);
  EXPECT_EQ(LinearAddress(Ok({0x64, 0x65, 0xF3, 0x0F, 0xB8, 0x00}), s), 0x20008u);  // last
  for (uint8_t null_prefix : {0x26, 0x2E, 0x36, 0x3E}) {
    EXPECT_EQ(LinearAddress(Ok({null_prefix, 0xF3, 0x0F, 0xB8, 0x00}), s), 0x8u);
    EXPECT_EQ(LinearAddress(Ok({0x65, null_prefix, 0xF3, 0x0F, 0xB8, 0x00}), s), 0x20008u);
  }
}

TEST(PvmDecoder, Cmpxchg16bForms) {
  Decoded d = Ok({0xF0, 0x48, 0x0F, 0xC7, 0x0F});  // lock cmpxchg16b [rdi]
  EXPECT_EQ(d.op, Op::kCmpxchg16b);
  EXPECT_TRUE(d.lock);
  EXPECT_EQ(d.length, 5);
  EXPECT_EQ(Ok({0x48, 0x0F, 0xC7, 0x0F}).op, Op::kCmpxchg16b);                 // LOCK is optional
  EXPECT_EQ(Ok({0x66, 0x48, 0x0F, 0xC7, 0x0F}).op, Op::kCmpxchg16b);           // REX.W beats 66
  EXPECT_EQ(Ok({0xF2, 0xF0, 0x48, 0x0F, 0xC7, 0x0F}).op, Op::kCmpxchg16b);     // XACQUIRE
  EXPECT_EQ(Ok({0xF3, 0xF0, 0x48, 0x0F, 0xC7, 0x0F}).op, Op::kCmpxchg16b);     // XRELEASE
  EXPECT_EQ(Ok({0x65, 0xF0, 0x49, 0x0F, 0xC7, 0x4C, 0x24, 0x40}).length, 8);   // gs:[r12+0x40]
  EXPECT_EQ(Rejected({0x0F, 0xC7, 0x0F}), Undecodable::Reason::kUnsupported);  // cmpxchg8b
  EXPECT_EQ(Rejected({0x48, 0x0F, 0xC7, 0x37}), Undecodable::Reason::kUnsupported);  // /6
  EXPECT_EQ(Rejected({0xF3, 0x48, 0x0F, 0xC7, 0x0F}), Undecodable::Reason::kUnsupported);
}

TEST(PvmDecoder, Cmpxchg16bWithRegisterOperandIsInvalidOpcode) {
  Decoded d = Ok({0x48, 0x0F, 0xC7, 0xC8});
  EXPECT_EQ(d.op, Op::kInvalidOpcode);
  EXPECT_EQ(d.length, 4);
}

TEST(PvmDecoder, LockIsInvalidOnEverythingButCmpxchg16b) {
  for (std::vector<uint8_t> insn : std::vector<std::vector<uint8_t>>{{0xF0, 0xCC},
                                                                     {0xF0, 0x9B},
                                                                     {0xF0, 0x0F, 0x01, 0xCA},
                                                                     {0xF0, 0x0F, 0x01, 0xCB},
                                                                     {0xF0, 0xF3, 0x0F, 0xB8, 0x07},
                                                                     {0xF0, 0x0F, 0xAE, 0x17},
                                                                     {0xF0, 0x0F, 0xAE, 0x1F},
                                                                     {0xF0, 0x0F, 0xAE, 0x27},
                                                                     {0xF0, 0x0F, 0xAE, 0x2F},
                                                                     {0xF0, 0x0F, 0xAE, 0x37}}) {
    Decoded d = Ok(insn);
    EXPECT_EQ(d.op, Op::kInvalidOpcode) << "length " << insn.size();
    EXPECT_EQ(d.length, insn.size());
  }
}

TEST(PvmDecoder, MxcsrAndXsaveFamily) {
  EXPECT_EQ(Ok({0x0F, 0xAE, 0x17}).op, Op::kLdmxcsr);              // ldmxcsr [rdi]
  EXPECT_EQ(Ok({0x0F, 0xAE, 0x5C, 0x24, 0xFC}).op, Op::kStmxcsr);  // stmxcsr [rsp-4]
  EXPECT_EQ(Ok({0x0F, 0xAE, 0x5C, 0x24, 0xFC}).length, 5);
  EXPECT_EQ(Ok({0x0F, 0xAE, 0x27}).op, Op::kXsave);
  EXPECT_EQ(Ok({0x0F, 0xAE, 0x2F}).op, Op::kXrstor);
  EXPECT_EQ(Ok({0x0F, 0xAE, 0x37}).op, Op::kXsaveopt);
  Decoded x64 = Ok({0x48, 0x0F, 0xAE, 0x27});  // xsave64 [rdi]
  EXPECT_EQ(x64.op, Op::kXsave);
  EXPECT_EQ(x64.operand_size, 64);
  EXPECT_TRUE(NeedsFpuState(x64.op));
  EXPECT_FALSE(NeedsFpuState(Op::kLdmxcsr));
  EXPECT_EQ(Ok({0x0F, 0xAE, 0x15, 0, 0, 0, 0}).mem.rip_relative, true);
}

TEST(PvmDecoder, OtherGroup15FormsAreUnsupported) {
  EXPECT_EQ(Rejected({0x0F, 0xAE, 0xE8}), Undecodable::Reason::kUnsupported);        // lfence
  EXPECT_EQ(Rejected({0x0F, 0xAE, 0xF0}), Undecodable::Reason::kUnsupported);        // mfence
  EXPECT_EQ(Rejected({0x0F, 0xAE, 0x07}), Undecodable::Reason::kUnsupported);        // fxsave
  EXPECT_EQ(Rejected({0x0F, 0xAE, 0x3F}), Undecodable::Reason::kUnsupported);        // clflush
  EXPECT_EQ(Rejected({0x66, 0x0F, 0xAE, 0x37}), Undecodable::Reason::kUnsupported);  // clwb
  EXPECT_EQ(Rejected({0xF3, 0x0F, 0xAE, 0x27}), Undecodable::Reason::kUnsupported);  // ptwrite
  EXPECT_EQ(Rejected({0xF3, 0x48, 0x0F, 0xAE, 0xD0}), Undecodable::Reason::kUnsupported);
}

TEST(PvmDecoder, UnsupportedKeepsTheBytesForTheMessage) {
  DecodeResult r = D({0x0F, 0x0B, 0x90});
  auto* u = std::get_if<Undecodable>(&r);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->reason, Undecodable::Reason::kUnsupported);
  EXPECT_EQ(u->size, 3);
  EXPECT_EQ(u->Message(), "unsupported instruction [0f 0b 90]");
  EXPECT_EQ(u->ToError().kind(), ErrorKind::kGuest);
  EXPECT_EQ(Rejected({0x90}), Undecodable::Reason::kUnsupported);
  EXPECT_EQ(Rejected({0xC4, 0xE1, 0xF8, 0xAE, 0x17}), Undecodable::Reason::kUnsupported);  // VEX
}

TEST(PvmDecoder, TruncatedBytesAreReportedAtEveryCut) {
  const std::vector<uint8_t> full = {0x65, 0xF3, 0x48, 0x0F, 0xB8, 0x84,
                                     0x8E, 0x78, 0x56, 0x34, 0x12};
  EXPECT_EQ(Ok(full).length, full.size());
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    EXPECT_EQ(Rejected(cut), Undecodable::Reason::kTruncated) << n << " bytes";
  }
  EXPECT_EQ(Rejected({0x0F, 0x01}), Undecodable::Reason::kTruncated);
  EXPECT_EQ(Rejected({0x66, 0x66}), Undecodable::Reason::kTruncated);
}

TEST(PvmDecoder, FifteenBytesDecodeSixteenAreTooLong) {
  std::vector<uint8_t> ok(14, 0x66);
  ok.push_back(0xCC);
  EXPECT_EQ(Ok(ok).length, 15);
  std::vector<uint8_t> prefixes(15, 0x66);
  prefixes.push_back(0xCC);  // the 16th byte is never read
  EXPECT_EQ(Ok(prefixes).op, Op::kTooLong);
  // 10 prefixes + F3 0F B8 + ModRM + SIB + disp32 = 19 bytes.
  std::vector<uint8_t> long_popcnt(10, 0x2E);
  for (uint8_t b : {0xF3, 0x0F, 0xB8, 0x84, 0x8E}) long_popcnt.push_back(b);
  EXPECT_EQ(Ok(long_popcnt).op, Op::kTooLong);
  EXPECT_LE(Ok(long_popcnt).length, kMaxInstructionLength);
}

TEST(PvmDecoder, OnlyIn64BitMode) {
  VcpuState s = LongModeState();
  s.cs_l = false;  // compatibility mode
  std::vector<uint8_t> int3 = {0xCC};
  DecodeResult r = Decode(int3, s);
  auto* u = std::get_if<Undecodable>(&r);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->reason, Undecodable::Reason::kNot64BitMode);
  s = VcpuState{};  // real mode
  EXPECT_TRUE(std::holds_alternative<Undecodable>(Decode(int3, s)));
}

TEST(PvmDecoder, InstructionBytesAreCopied) {
  Decoded d = Ok({0xF3, 0x0F, 0xB8, 0xC1, 0xCC, 0xCC});
  EXPECT_EQ(d.length, 4);
  EXPECT_EQ(d.bytes[3], 0xC1);
  EXPECT_EQ(d.bytes[4], 0x00);
}

}  // namespace
}  // namespace vmm::compat::pvm
