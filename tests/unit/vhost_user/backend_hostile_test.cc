// A hostile front-end against the vhost-user back-end session: every message that breaks
// the protocol ends the session with a kProtocol Error (and nothing else happens: no
// mapping, no ring, no fd kept). Memory regions must be sealed memfds large enough for
// what they claim; ring addresses must lie in a region.
#include <gtest/gtest.h>

#include "tests/unit/vhost_user/backend_fixture.h"
#include "tests/unit/vhost_user/test_util.h"

namespace vmm::vhost_user {
namespace {

using namespace testing;

// A fresh, negotiated rng session that gets `send` and must end with a kProtocol Error.
template <typename Send>
void ExpectRefused(Send&& send, const std::string& why) {
  SCOPED_TRACE(why);
  RngRig rig;
  Session s(rig.dev);
  Negotiate(s);
  send(s);
  Result<void> end = s.Ended();
  EXPECT_TRUE(IsProtocolError(end)) << (end.has_value() ? "ok" : end.error().ToString());
}

TEST(VhostUserBackend, SetFeaturesWithBitsNotOfferedEndsTheSession) {
  ExpectRefused(
      [](Session& s) {
        uint64_t offered = s.Ask<uint64_t>(Request::kGetFeatures);
        s.Send(Request::kSetFeatures, offered | (uint64_t{1} << 40));
      },
      "bit 40");
  ExpectRefused([](Session& s) { s.Send(Request::kSetFeatures, uint64_t{virtio::kVirtioBlkFRo}); },
                "a blk feature on rng");
}

TEST(VhostUserBackend, SetProtocolFeaturesNotOfferedEndsTheSession) {
  ExpectRefused(
      [](Session& s) {
        s.Send(Request::kSetProtocolFeatures, uint64_t{ProtocolBit(kProtocolConfig)});
      },
      "CONFIG without a config space");
  ExpectRefused(
      [](Session& s) {
        s.Send(Request::kSetProtocolFeatures, uint64_t{ProtocolBit(kProtocolBackendReq)});
      },
      "BACKEND_REQ");
}

TEST(VhostUserBackend, VringIndexBeyondTheQueueCountEndsTheSession) {
  const size_t before = OpenFdCount();
  ExpectRefused([](Session& s) { s.Send(Request::kSetVringNum, VringState{1, 16}); }, "NUM");
  ExpectRefused([](Session& s) { s.Send(Request::kSetVringBase, VringState{255, 0}); }, "BASE");
  ExpectRefused([](Session& s) { s.Send(Request::kGetVringBase, VringState{1, 0}); }, "GET_BASE");
  ExpectRefused([](Session& s) { s.Send(Request::kSetVringEnable, VringState{1, 1}); }, "ENABLE");
  ExpectRefused(
      [](Session& s) {
        VringAddress a{.index = 1,
                       .flags = 0,
                       .descriptor = kUserBase,
                       .used = kUserBase,
                       .available = kUserBase,
                       .log = 0};
        s.Send(Request::kSetVringAddr, a);
      },
      "ADDR");
  for (Request r : {Request::kSetVringKick, Request::kSetVringCall, Request::kSetVringErr}) {
    ExpectRefused(
        [r](Session& s) {
          UniqueFd fd = EventFd();
          s.Send(r, VringFd{1, false}, {fd.get()});
        },
        RequestName(r));
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(VhostUserBackend, VringNumNotAPowerOfTwoEndsTheSession) {
  ExpectRefused([](Session& s) { s.Send(Request::kSetVringNum, VringState{0, 3}); }, "3");
  ExpectRefused([](Session& s) { s.Send(Request::kSetVringNum, VringState{0, 1000}); }, "1000");
}

TEST(VhostUserBackend, VringNumAboveTheMaximumEndsTheSession) {
  ExpectRefused(
      [](Session& s) {
        s.Send(Request::kSetVringNum, VringState{0, 2048});
      },
      "above the default 1024");
  RngRig rig;
  Session s(rig.dev, {.max_queue_size = 64});
  s.Send(Request::kSetVringNum, VringState{0, 128});
  EXPECT_TRUE(IsProtocolError(s.Ended()));
}

TEST(VhostUserBackend, VringBaseAbove65535EndsTheSession) {
  ExpectRefused(
      [](Session& s) {
        s.Send(Request::kSetVringBase, VringState{0, 0x10000});
      },
      "0x10000");
}

TEST(VhostUserBackend, VringAddrOutsideEveryRegionEndsTheSession) {
  auto with_table = [](uint64_t desc, uint64_t used, uint64_t avail) {
    return [=](Session& s) {
      GuestMemory mem(64 * 1024);
      s.Ack(Request::kSetMemTable, mem.Table(), {mem.fd()});
      VringAddress a{
          .index = 0, .flags = 0, .descriptor = desc, .used = used, .available = avail, .log = 0};
      s.Send(Request::kSetVringAddr, a);
    };
  };
  const uint64_t in = kUserBase + 0x1000, end = kUserBase + 64 * 1024;
  ExpectRefused(with_table(end, in, in), "descriptor just past the region");
  ExpectRefused(with_table(in, kUserBase - 1, in), "used just before the region");
  ExpectRefused(with_table(in, in, 0x1000), "available at its guest-physical address");
  ExpectRefused(
      [&](Session& s) {
        VringAddress a{
            .index = 0, .flags = 0, .descriptor = in, .used = in, .available = in, .log = 0};
        s.Send(Request::kSetVringAddr, a);
      },
      "no memory table yet");
}

TEST(VhostUserBackend, VringAddrAskingForLoggingEndsTheSession) {
  ExpectRefused(
      [](Session& s) {
        GuestMemory mem;
        Driver drv(mem);
        s.Ack(Request::kSetMemTable, mem.Table(), {mem.fd()});
        VringAddress a = drv.Address();
        a.flags = kVringFlagLog;
        s.Send(Request::kSetVringAddr, a);
      },
      "VHOST_VRING_F_LOG");
}

TEST(VhostUserBackend, KickWithoutAnFdEndsTheSession) {
  ExpectRefused([](Session& s) { s.Send(Request::kSetVringKick, VringFd{0, true}); }, "NOFD");
}

TEST(VhostUserBackend, MemfdWithoutAShrinkSealEndsTheSession) {
  for (int seals : {0, F_SEAL_GROW, F_SEAL_GROW | F_SEAL_WRITE}) {
    ExpectRefused(
        [seals](Session& s) {
          UniqueFd fd = Memfd(64 * 1024, seals);
          s.Send(Request::kSetMemTable, MemoryTable{{{0, 64 * 1024, kUserBase, 0}}}, {fd.get()});
        },
        "seals " + std::to_string(seals));
  }
}

TEST(VhostUserBackend, RegionLargerThanItsMemfdEndsTheSession) {
  const uint64_t size = 64 * 1024;
  for (MemoryRegion r :
       {MemoryRegion{0, size + 4096, kUserBase, 0}, MemoryRegion{0, size, kUserBase, 4096},
        MemoryRegion{0, 4096, kUserBase, size},
        MemoryRegion{0, 4096, kUserBase, uint64_t{1} << 62}}) {
    ExpectRefused(
        [&](Session& s) {
          UniqueFd fd = Memfd(size);
          s.Send(Request::kSetMemTable, MemoryTable{{r}}, {fd.get()});
        },
        "size " + std::to_string(r.memory_size) + " at offset " + std::to_string(r.mmap_offset));
  }
  ExpectRefused(
      [&](Session& s) {
        UniqueFd fd = Memfd(size);
        s.SendRaw(Wire(Request::kSetMemTable, PayloadBytes().U32(1).U32(0).Region(
                                                  0, 4096, kUserBase, ~uint64_t{0} - 4095)),
                  {fd.get()});
      },
      "mmap_offset + memory_size wraps past 2^64");
  // The second region of a table is checked as strictly as the first.
  ExpectRefused(
      [&](Session& s) {
        UniqueFd a = Memfd(size), b = Memfd(size);
        MemoryTable t{
            {{0, size, kUserBase, 0}, {1ull << 32, 2 * size, kUserBase + (1ull << 32), 0}}};
        s.Send(Request::kSetMemTable, t, {a.get(), b.get()});
      },
      "second region");
}

TEST(VhostUserBackend, RegionFdThatIsNotAMemfdEndsTheSession) {
  ExpectRefused(
      [](Session& s) {
        UniqueFd null(open("/dev/null", O_RDWR | O_CLOEXEC));
        s.Send(Request::kSetMemTable, MemoryTable{{{0, 4096, kUserBase, 0}}}, {null.get()});
      },
      "/dev/null");
  ExpectRefused(
      [](Session& s) {
        int p[2];
        ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
        UniqueFd r(p[0]), w(p[1]);
        s.Send(Request::kSetMemTable, MemoryTable{{{0, 4096, kUserBase, 0}}}, {r.get()});
      },
      "a pipe");
  ExpectRefused(
      [](Session& s) {
        UniqueFd file(open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
        ASSERT_EQ(ftruncate(file.get(), 1 << 20), 0);
        s.Send(Request::kSetMemTable, MemoryTable{{{0, 4096, kUserBase, 0}}}, {file.get()});
      },
      "a regular file");
  ExpectRefused(
      [](Session& s) {
        UniqueFd fd = EventFd();
        s.Send(Request::kSetMemTable, MemoryTable{{{0, 4096, kUserBase, 0}}}, {fd.get()});
      },
      "an eventfd");
}

TEST(VhostUserBackend, RequestsThisBackEndDoesNotOfferEndTheSession) {
  const MemoryRegion r{0, 4096, kUserBase, 0};
  ExpectRefused(
      [&](Session& s) {
        UniqueFd fd = Memfd(4096);
        s.Send(Request::kAddMemReg, SingleRegion{r}, {fd.get()});
      },
      "ADD_MEM_REG");
  ExpectRefused([&](Session& s) { s.Send(Request::kRemMemReg, SingleRegion{r}); }, "REM_MEM_REG");
  ExpectRefused([](Session& s) { s.Send(Request::kSetStatus, uint64_t{15}); }, "SET_STATUS");
  ExpectRefused([](Session& s) { s.Send(Request::kGetStatus, std::monostate{}); }, "GET_STATUS");
  ExpectRefused([](Session& s) { s.Send(Request::kResetDevice, std::monostate{}); },
                "RESET_DEVICE");
  ExpectRefused([](Session& s) { s.Send(Request::kGetMaxMemSlots, std::monostate{}); },
                "GET_MAX_MEM_SLOTS");
  ExpectRefused(
      [](Session& s) {
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        UniqueFd a(sv[0]), b(sv[1]);
        s.Send(Request::kSetBackendReqFd, std::monostate{}, {a.get()});
      },
      "SET_BACKEND_REQ_FD");
  // Codes the codec itself refuses: SET_LOG_BASE, one past the last, one far beyond.
  for (uint32_t code : {6u, 41u, 0xFFFFFFFFu}) {
    ExpectRefused([code](Session& s) { s.SendRaw(Wire(code, kVersion, PayloadBytes().U64(0))); },
                  "code " + std::to_string(code));
  }
}

TEST(VhostUserBackend, MalformedMessagesEndTheSession) {
  ExpectRefused(
      [](Session& s) {
        s.SendRaw(
            Wire(static_cast<uint32_t>(Request::kSetFeatures), kVersion, PayloadBytes().U32(1)));
      },
      "a 4-byte SET_FEATURES");
  ExpectRefused(
      [](Session& s) {
        s.SendRaw(Wire(static_cast<uint32_t>(Request::kSetFeatures), kVersion,
                       PayloadBytes().U32(1), /*size=*/8));
        s.StopWriting();
      },
      "truncated: the front-end hangs up inside a message");
  ExpectRefused(
      [](Session& s) {
        s.SendRaw(Wire(static_cast<uint32_t>(Request::kGetQueueNum), kVersion | kFlagReply));
      },
      "a reply where a request belongs");
  ExpectRefused(
      [](Session& s) {
        s.SendRaw(Wire(static_cast<uint32_t>(Request::kSetMemTable), kVersion,
                       PayloadBytes().U32(0).U32(0)));
      },
      "an empty memory table");
}

TEST(VhostUserBackend, FdsWhereNoneBelongEndTheSessionAndAreClosed) {
  const size_t before = OpenFdCount();
  ExpectRefused(
      [](Session& s) {
        UniqueFd fd = EventFd();
        s.SendRaw(Wire(Request::kGetFeatures), {fd.get()});
      },
      "GET_FEATURES with an fd");
  ExpectRefused(
      [](Session& s) {
        UniqueFd fd = EventFd();
        s.SendRaw(Wire(Request::kSetVringKick, PayloadBytes().U64(kVringNoFd)), {fd.get()});
      },
      "a NOFD kick with an fd");
  ExpectRefused(
      [](Session& s) {
        UniqueFd a = Memfd(4096), b = Memfd(4096);
        s.SendRaw(
            Wire(Request::kSetMemTable, PayloadBytes().U32(1).U32(0).Region(0, 4096, kUserBase, 0)),
            {a.get(), b.get()});
      },
      "two fds for one region");
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(VhostUserBackend, NoFdWhereOneMustBeEndsTheSession) {
  ExpectRefused([](Session& s) { s.SendRaw(Wire(Request::kSetVringCall, PayloadBytes().U64(0))); },
                "SET_VRING_CALL without NOFD or fd");
  ExpectRefused(
      [](Session& s) {
        s.SendRaw(Wire(Request::kSetMemTable,
                       PayloadBytes().U32(1).U32(0).Region(0, 4096, kUserBase, 0)));
      },
      "a memory table without its fd");
}

// An eventfd never hangs up; a pipe whose writer is gone would be "ready" forever and spin
// the poll loop.
TEST(VhostUserBackend, KickFdThatHangsUpEndsTheSession) {
  ExpectRefused(
      [](Session& s) {
        GuestMemory mem;
        Driver drv(mem);
        RingFds fds;
        int p[2];
        ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
        fds.kick.reset(p[0]);
        UniqueFd writer(p[1]);
        StartRing(s, mem, drv, fds);
        writer.reset();
      },
      "a pipe as kick fd");
}

}  // namespace
}  // namespace vmm::vhost_user
