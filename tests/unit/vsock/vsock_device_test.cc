// VsockDevice (vmm/device/vsock/vsock_device.h) between fake rings and real unix sockets in
// a temporary directory: both directions of connection set-up and data, a refused port, and
// host clients that break the CONNECT line.
#include "vmm/device/vsock/vsock_device.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/unix_socket.h"
#include "tests/unit/common/temp_dir.h"
#include "tests/unit/virtio/fake_driver.h"

namespace vmm::vsock {
namespace {

using virtio::FakeGuestRam;
using virtio::SplitQueue;
using virtio::testing::FakeDriver;

constexpr uint64_t kGuest = 3;

class VsockDeviceTest : public testing::Test {
 protected:
  void SetUp() override {
    auto listener = ListenUnix(dir.path() + "/v.sock", 4);
    ASSERT_TRUE(listener);
    ASSERT_EQ(fcntl(listener->get(), F_SETFL, O_NONBLOCK), 0);
    VsockDeviceOptions o;
    o.engine.guest_cid = kGuest;
    o.connect_prefix = dir.path() + "/v.sock_";
    o.log = [this](const std::string& line) { logs.push_back(line); };
    dev.emplace(std::move(o), std::move(*listener));
    auto l = EventLoop::Create();
    ASSERT_TRUE(l);
    loop.emplace(std::move(*l));
    ASSERT_TRUE(dev->Attach(*loop));
    auto r = SplitQueue::Create(mem, rx.config(), dev->queue_limits());
    auto t = SplitQueue::Create(mem, tx.config(), dev->queue_limits());
    ASSERT_TRUE(r && t);
    rxq.emplace(std::move(*r));
    txq.emplace(std::move(*t));
  }

  void TearDown() override {
    dev.reset();  // leaves the loop before it goes
  }

  // A guest packet on the tx ring, processed.
  void GuestSends(Op op, uint32_t guest_port, uint32_t host_port, const std::string& data = "",
                  uint32_t flags = 0) {
    Header h{kGuest,
             kHostCid,
             guest_port,
             host_port,
             static_cast<uint32_t>(data.size()),
             kTypeStream,
             static_cast<uint16_t>(op),
             flags,
             64 * 1024,
             0};
    auto hdr = EncodeHeader(h);
    std::vector<uint8_t> bytes(hdr.begin(), hdr.end());
    bytes.insert(bytes.end(), data.begin(), data.end());
    uint64_t at = tx.AllocBytes(bytes);
    tx.Publish(tx.AddChain({{at, static_cast<uint32_t>(bytes.size()), false}}));
    ASSERT_TRUE(dev->ProcessQueue(kTxQueue, *txq));
  }

  // Serves the loop once (up to `ms`) and then the rx ring if the device asks for it, as
  // the vhost-user session does; returns the packets the guest received.
  std::vector<std::pair<Header, std::string>> Turn(int ms = 200) {
    EXPECT_TRUE(loop->RunOnce(ms));
    return ReceiveAll();
  }

  std::vector<std::pair<Header, std::string>> ReceiveAll() {
    std::vector<std::pair<Header, std::string>> out;
    while (dev->PendingQueues() & (1u << kRxQueue)) {
      const uint64_t at = rx.Alloc(4096);
      const uint16_t before = rx.used_idx();
      rx.Publish(rx.AddChain({{at, 4096, true}}));
      EXPECT_TRUE(dev->ProcessQueue(kRxQueue, *rxq));
      if (rx.used_idx() == before) break;
      auto [id, len] = rx.UsedElem(before);
      std::vector<uint8_t> b = mem.Read(at, len);
      auto h = ParseHeader(b);
      EXPECT_TRUE(h);
      if (!h) break;
      out.emplace_back(*h, std::string(b.begin() + kHeaderSize, b.end()));
    }
    return out;
  }

  static std::string ReadSome(int fd) {
    char buf[256];
    auto ready = EventLoop::WaitFd(fd, EPOLLIN, 2000);
    EXPECT_TRUE(ready && (*ready & EPOLLIN));
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  // A host client connected to the device's listener (UPATH); -1 (and a failure) if it cannot.
  UniqueFd ConnectHostClient() {
    UniqueFd client(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = dir.path() + "/v.sock";
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ADD_FAILURE() << "connect " << path << ": " << strerror(errno);
      return UniqueFd();
    }
    return client;
  }

  testing_util::TempDir dir{"vmm-vsock"};
  FakeGuestRam mem{1 << 20};
  FakeDriver rx{mem, 64, 0x1000, 0x40000};
  FakeDriver tx{mem, 64, 0x4000, 0x80000};
  std::optional<SplitQueue> rxq, txq;
  std::optional<EventLoop> loop;
  std::optional<VsockDevice> dev;
  std::vector<std::string> logs;
};

TEST_F(VsockDeviceTest, ConfigIsTheGuestCid) {
  ASSERT_EQ(dev->config().size(), 8u);
  EXPECT_EQ(dev->config()[0], kGuest);
  EXPECT_EQ(dev->num_queues(), 3u);
}

TEST_F(VsockDeviceTest, GuestConnectsToHostPortAndDataFlowsBothWays) {
  auto host = ListenUnix(dir.path() + "/v.sock_5000", 4);
  ASSERT_TRUE(host);
  GuestSends(Op::kRequest, 40000, 5000);
  UniqueFd conn = AcceptConnection(host->get());
  ASSERT_TRUE(conn.valid());
  auto got = ReceiveAll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first.op, static_cast<uint16_t>(Op::kResponse));
  EXPECT_EQ(got[0].first.dst_port, 40000u);

  GuestSends(Op::kRw, 40000, 5000, "hello");
  EXPECT_EQ(ReadSome(conn.get()), "hello");

  ASSERT_EQ(send(conn.get(), "world", 5, 0), 5);
  got = Turn();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first.op, static_cast<uint16_t>(Op::kRw));
  EXPECT_EQ(got[0].second, "world");

  // The host closes: the guest gets SHUTDOWN, answers RST, and the socket is gone.
  conn.reset();
  got = Turn();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first.op, static_cast<uint16_t>(Op::kShutdown));
  GuestSends(Op::kRst, 40000, 5000);
  EXPECT_EQ(dev->host_sockets(), 0u);
  EXPECT_EQ(dev->engine().connections(), 0u);
}

TEST_F(VsockDeviceTest, GuestConnectToAPortWithoutListenerIsReset) {
  GuestSends(Op::kRequest, 40000, 7777);
  auto got = ReceiveAll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first.op, static_cast<uint16_t>(Op::kRst));
  ASSERT_FALSE(logs.empty());
  EXPECT_NE(logs.back().find("no listener at"), std::string::npos);
}

TEST_F(VsockDeviceTest, HostClientConnectsToGuestPort) {
  UniqueFd client = ConnectHostClient();
  ASSERT_GE(client.get(), 0);
  ASSERT_EQ(send(client.get(), "CONNECT 52\nping", 15, 0), 15);
  Turn();             // accept
  auto got = Turn();  // the CONNECT line
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first.op, static_cast<uint16_t>(Op::kRequest));
  EXPECT_EQ(got[0].first.dst_port, 52u);
  const uint32_t local = got[0].first.src_port;
  EXPECT_GE(local, kFirstLocalPort);

  GuestSends(Op::kResponse, 52, local);
  EXPECT_EQ(ReadSome(client.get()), "OK " + std::to_string(local) + "\n");
  // The bytes the client sent after its line reach the guest once it has credit.
  got = Turn();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second, "ping");
  GuestSends(Op::kRw, 52, local, "pong");
  EXPECT_EQ(ReadSome(client.get()), "pong");
}

TEST_F(VsockDeviceTest, HostClientWithABadLineIsClosed) {
  for (const char* line : {"HELLO 52\n", "CONNECT 052\n", "CONNECT 99999999999\n",
                           "CONNECT 1 2 3 4 5 6 7 8 9 10 11 12 13"}) {
    SCOPED_TRACE(line);
    UniqueFd client = ConnectHostClient();
    ASSERT_GE(client.get(), 0);
    ASSERT_GT(send(client.get(), line, strlen(line), 0), 0);
    Turn();
    EXPECT_TRUE(Turn().empty());
    EXPECT_EQ(ReadSome(client.get()), "");  // EOF: closed by the device
    EXPECT_EQ(dev->engine().connections(), 0u);
  }
}

TEST(VsockConnectLine, Strict) {
  auto zero = ParseConnectLine("CONNECT 0\n");
  ASSERT_TRUE(zero);
  EXPECT_EQ(*zero, 0u);
  auto max = ParseConnectLine("CONNECT 4294967295\n");
  ASSERT_TRUE(max);
  EXPECT_EQ(*max, 4294967295u);
  for (const char* bad : {"CONNECT 4294967296\n", "CONNECT \n", "CONNECT -1\n", "CONNECT 1",
                          "connect 1\n", "CONNECT  1\n", "CONNECT 1 \n", "CONNECT 01\n"}) {
    EXPECT_FALSE(ParseConnectLine(bad)) << bad;
  }
}

}  // namespace
}  // namespace vmm::vsock
