#include "vtpm/process/swtpm_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "base/unix_socket.h"
#include "vtpm/engine/tpm_engine.h"

namespace vmm::vtpm {

using swtpm::Command;

struct SwtpmServer::Group {
  ChannelPolicy policy;
  uint8_t locality = 0;
  bool has_datafd = false;  // a data channel passed by SET_DATAFD is open
};

struct SwtpmServer::Listener {
  UniqueFd fd;
  int group = 0;
  bool control = false;
  std::optional<uint32_t> watched;  // EPOLLIN while the event loop waits for a connection
};

struct SwtpmServer::Channel {
  struct PendingFd {
    uint64_t offset;  // stream offset of the first byte that arrived with it
    UniqueFd fd;
  };
  UniqueFd fd;
  int group = 0;
  bool control = false;
  bool from_datafd = false;
  bool primary = false;  // the control channel given to AddGroup (stop_when_closed)
  bool is_socket = true;
  bool closed = false;
  std::vector<uint8_t> in;  // received, not yet consumed
  uint64_t in_base = 0;     // stream offset of in[0]
  std::vector<PendingFd> fds;
  std::vector<uint8_t> out;
  size_t out_pos = 0;
  std::optional<Clock::time_point> deadline;
  std::optional<uint32_t> watched;  // the events the event loop waits for on fd
};

namespace {

constexpr size_t kReadChunk = 16 * 1024;
// How long listeners rest after accept4 ran out of fds or memory, unless a channel closes.
constexpr std::chrono::milliseconds kAcceptPause(1000);
constexpr size_t kDefaultMaxChannels = ServerOptions{}.max_channels;
// Control data room for a few fds: SET_DATAFD brings one; more is a protocol error, and
// room for several lets us see (and close) them rather than have the kernel truncate.
constexpr size_t kMaxFdsPerRead = 8;
static_assert(SwtpmServer::kFdReserve > kMaxFdsPerRead, "room for one read's fds and a state file");
// What a non-platform group may send (ARCHITECTURE.md §1: the guest's channel).
constexpr uint32_t kGuestCaps =
    swtpm::kCapGetTpmEstablished | swtpm::kCapCancelTpmCmd | swtpm::kCapGetConfig;
constexpr uint32_t kPlatformCaps =
    swtpm::kCapInit | swtpm::kCapShutdown | swtpm::kCapGetTpmEstablished | swtpm::kCapSetLocality |
    swtpm::kCapHashing | swtpm::kCapCancelTpmCmd | swtpm::kCapStoreVolatile |
    swtpm::kCapResetTpmEstablished | swtpm::kCapGetStateBlob | swtpm::kCapSetStateBlob |
    swtpm::kCapStop | swtpm::kCapGetConfig | swtpm::kCapSetDataFd | swtpm::kCapSetBufferSize |
    swtpm::kCapGetInfo | swtpm::kCapLockStorage;

bool GuestMay(Command c) {
  return c == Command::kGetCapability || c == Command::kGetTpmEstablished ||
         c == Command::kCancelTpmCmd || c == Command::kGetConfig;
}

bool NeedsRunning(Command c) {
  switch (c) {
    case Command::kGetTpmEstablished:
    case Command::kResetTpmEstablished:
    case Command::kHashStart:
    case Command::kHashData:
    case Command::kHashEnd:
    case Command::kCancelTpmCmd:
    case Command::kStoreVolatile:
    case Command::kGetStateBlob:
      return true;
    default:
      return false;
  }
}

bool SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// The answer when a command is refused: GET_STATEBLOB always carries its 16-byte header
// (QEMU reads it whole), everything else the 4-byte result.
std::vector<uint8_t> Refusal(Command c, uint32_t res) {
  if (c == Command::kGetStateBlob) return swtpm::EncodeStateBlob(res, 0, {});
  return swtpm::EncodeResult(res);
}

}  // namespace

SwtpmServer::SwtpmServer(TpmService& tpm, std::function<void(const std::string&)> log,
                         ServerOptions options)
    : tpm_(tpm), log_(std::move(log)), options_(options) {}

size_t SwtpmServer::MaxChannelsForFdLimit(uint64_t nofile, size_t other_fds) {
  const uint64_t taken = uint64_t{other_fds} + kFdReserve;
  if (nofile <= taken) return 1;
  return static_cast<size_t>(std::min<uint64_t>(nofile - taken, kDefaultMaxChannels));
}

SwtpmServer::~SwtpmServer() = default;

uint32_t SwtpmServer::Capabilities(const ChannelPolicy& policy) {
  return policy.platform ? kPlatformCaps : kGuestCaps;
}

void SwtpmServer::Log(const std::string& m) const { log_.Log("swtpm: " + m); }

std::string SwtpmServer::Describe(const Channel& ch) const {
  const Group& g = groups_[static_cast<size_t>(ch.group)];
  return "group " + std::to_string(ch.group) + (g.policy.platform ? " (platform)" : " (guest)") +
         (ch.control ? " control" : " data") + " channel " + std::to_string(ch.fd.get());
}

int SwtpmServer::AddGroup(ChannelPolicy policy, UniqueFd control, UniqueFd data) {
  if (policy.locality > swtpm::kMaxLocality) {
    Log("refusing a channel group with locality " + std::to_string(policy.locality));
    return -1;
  }
  const int id = static_cast<int>(groups_.size());
  groups_.push_back(Group{policy, policy.locality, false});
  if (control.valid() && AddChannel(std::move(control), id, true, false)) {
    channels_.back()->primary = true;
  }
  if (data.valid()) AddChannel(std::move(data), id, false, false);
  return id;
}

void SwtpmServer::AddListener(UniqueFd listening, int group, bool control) {
  if (group < 0 || static_cast<size_t>(group) >= groups_.size() || !listening.valid()) {
    Log("ignoring a listener for unknown group " + std::to_string(group));
    return;
  }
  if (!SetNonBlocking(listening.get())) {
    Log("listener: fcntl(O_NONBLOCK): " + std::string(std::strerror(errno)));
    return;
  }
  listeners_.push_back(Listener{std::move(listening), group, control, std::nullopt});
}

bool SwtpmServer::AddChannel(UniqueFd fd, int group, bool control, bool from_datafd) {
  if (!SetNonBlocking(fd.get())) {
    Log("group " + std::to_string(group) +
        ": dropping a channel: fcntl(O_NONBLOCK): " + std::strerror(errno));
    return false;
  }
  auto ch = std::make_unique<Channel>();
  ch->fd = std::move(fd);
  ch->group = group;
  ch->control = control;
  ch->from_datafd = from_datafd;
  if (from_datafd) groups_[static_cast<size_t>(group)].has_datafd = true;
  channels_.push_back(std::move(ch));
  return true;
}

void SwtpmServer::Accept(Listener& l) {
  UniqueFd fd = AcceptConnection(l.fd.get(), /*nonblocking=*/true);
  if (!fd.valid()) {
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return;
    std::string m =
        "accept4 on a listener of group " + std::to_string(l.group) + ": " + std::strerror(err);
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      // The connection stays queued and the loop would report it again at once: rest instead.
      accept_paused_until_ = Clock::now() + kAcceptPause;
      m += "; listeners paused until a channel closes (at most " +
           std::to_string(kAcceptPause.count()) + " ms)";
    }
    Log(m);
    return;
  }
  auto ch = std::make_unique<Channel>();
  ch->fd = std::move(fd);
  ch->group = l.group;
  ch->control = l.control;
  channels_.push_back(std::move(ch));
}

void SwtpmServer::Close(Channel& ch, const std::string& why, bool error) {
  if (ch.closed) return;
  Group& g = groups_[static_cast<size_t>(ch.group)];
  if (error || !why.empty()) Log(Describe(ch) + ": " + why + (error ? "; closing it" : ""));
  if (ch.from_datafd) g.has_datafd = false;
  if (ch.primary && g.policy.stop_when_closed && !stop_) {
    stop_ = true;
    if (error) {
      stop_error_ = Error(ErrorKind::kProtocol, Describe(ch) + " (stop_when_closed): " + why);
    } else {
      Log(Describe(ch) + " closed; its group ends the server");
    }
  }
  ch.closed = true;
  accept_paused_until_.reset();                         // an fd is free again
  if (loop_ && ch.watched) loop_->Remove(ch.fd.get());  // while it is still open
  ch.watched.reset();
  ch.fd.reset();
  ch.fds.clear();
  ch.in.clear();
  ch.out.clear();
}

void SwtpmServer::Read(Channel& ch) {
  // `in` holds at most one incomplete message here (Process consumed every complete one
  // and nothing is read while an answer is pending), so it stays below the largest
  // message the decoders accept plus one chunk.
  const size_t old = ch.in.size();
  ch.in.resize(old + kReadChunk);
  ssize_t n;
  std::vector<UniqueFd> fds;
  bool bad_control = false;
  if (ch.is_socket) {
    Received r = ReceiveWithFds(ch.fd.get(), std::span(ch.in).subspan(old, kReadChunk),
                                kMaxFdsPerRead, MSG_DONTWAIT);
    n = r.n;
    if (n < 0 && r.error == ENOTSOCK) {
      ch.is_socket = false;  // a pipe or similar passed by SET_DATAFD
      n = ::read(ch.fd.get(), ch.in.data() + old, kReadChunk);
    } else if (n < 0) {
      errno = r.error;
    } else {
      // Every fd is owned before anything is judged, so that all of them are closed on error.
      fds = std::move(r.fds);
      bad_control = r.bad_control();
    }
  } else {
    n = ::read(ch.fd.get(), ch.in.data() + old, kReadChunk);
  }
  if (n < 0) {
    ch.in.resize(old);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    Close(ch, std::string("receive failed: ") + std::strerror(errno), errno != ECONNRESET);
    return;
  }
  ch.in.resize(old + static_cast<size_t>(n));
  if (bad_control) return Close(ch, "sent control data other than one SCM_RIGHTS list", true);
  if (!fds.empty() && !ch.control) {
    return Close(ch, "sent " + std::to_string(fds.size()) + " fd(s) on a data channel", true);
  }
  if (n == 0) {
    if (!ch.in.empty()) {
      return Close(ch,
                   "peer closed the channel inside a message (" + std::to_string(ch.in.size()) +
                       " bytes of it received)",
                   true);
    }
    return Close(ch, "", false);
  }
  // Only SET_DATAFD carries an fd, one, and a complete request is handled before the next
  // read: more than one waiting can only be abuse (and would pin fds until the deadline).
  if (ch.fds.size() + fds.size() > 1) {
    return Close(ch, "sent more fds than the pending request can carry", true);
  }
  for (UniqueFd& fd : fds) ch.fds.push_back({ch.in_base + old, std::move(fd)});
  if (!ch.deadline) ch.deadline = Clock::now() + options_.message_deadline;
  Process(ch);
}

void SwtpmServer::Process(Channel& ch) {
  const Group& g = groups_[static_cast<size_t>(ch.group)];
  while (!ch.closed && ch.out.empty() && !stop_ && !ch.in.empty()) {
    swtpm::Decoded d;
    if (ch.control) {
      swtpm::DecodeLimits limits;
      // A non-platform group may not set state or hash at all: refuse the request, but
      // never buffer more of it than a page.
      if (!g.policy.platform) limits.max_state_blob = limits.max_hash_data = 4096;
      d = swtpm::DecodeRequest(ch.in, limits);
    } else {
      d = swtpm::FrameTpmCommand(ch.in,
                                 std::min<uint32_t>(tpm_.MaxCommandSize(), kMaxTpmCommandSize));
    }
    if (d.status == swtpm::Decoded::kError) return Close(ch, "protocol error: " + d.error, true);
    if (d.status == swtpm::Decoded::kNeedMore) return;

    const uint64_t end = ch.in_base + d.size;
    std::vector<UniqueFd> fds;
    while (!ch.fds.empty() && ch.fds.front().offset < end) {
      fds.push_back(std::move(ch.fds.front().fd));
      ch.fds.erase(ch.fds.begin());
    }
    std::vector<uint8_t> message(ch.in.begin(), ch.in.begin() + static_cast<ptrdiff_t>(d.size));
    ch.in.erase(ch.in.begin(), ch.in.begin() + static_cast<ptrdiff_t>(d.size));
    ch.in_base = end;
    ch.deadline.reset();
    if (ch.control) {
      HandleControl(ch, d.request, std::move(fds));
    } else {
      HandleData(ch, message);
    }
    if (!ch.closed && !ch.in.empty() && !ch.deadline) {
      ch.deadline = Clock::now() + options_.message_deadline;
    }
  }
}

void SwtpmServer::HandleData(Channel& ch, std::span<const uint8_t> command) {
  const Group& g = groups_[static_cast<size_t>(ch.group)];
  if (!tpm_.running()) {
    Queue(ch, TpmErrorResponse(kTpmRcFailure));  // swtpm's answer before CMD_INIT
    return;
  }
  std::vector<uint8_t> rsp = tpm_.Execute(command, g.locality);
  if (rsp.size() < kTpmHeaderSize || LoadBe<uint32_t>(rsp, 2) != rsp.size()) {
    Log(Describe(ch) + ": the TPM returned a malformed response");
    rsp = TpmErrorResponse(kTpmRcFailure);
  }
  Queue(ch, std::move(rsp));
}

void SwtpmServer::HandleControl(Channel& ch, const swtpm::Request& req, std::vector<UniqueFd> fds) {
  Group& g = groups_[static_cast<size_t>(ch.group)];
  const Command c = req.command;
  const std::string name = swtpm::CommandName(c);
  if (c == Command::kSetDataFd ? fds.size() != 1 : !fds.empty()) {
    return Close(ch,
                 "protocol error: " + name + " arrived with " + std::to_string(fds.size()) +
                     " fd(s)" + (c == Command::kSetDataFd ? ", it needs exactly one" : ""),
                 true);
  }
  if (!g.policy.platform && !GuestMay(c)) {
    Log(Describe(ch) + ": " + name + " refused: only a platform channel may send it");
    return Queue(ch, Refusal(c, swtpm::kResBadOrdinal));
  }
  const bool running = tpm_.running();
  if (NeedsRunning(c) && !running) {
    Log(Describe(ch) + ": " + name + " refused: the TPM is not running");
    return Queue(ch, Refusal(c, swtpm::kResBadOrdinal));
  }
  if ((c == Command::kSetStateBlob || (c == Command::kSetBufferSize && req.buffer_size != 0)) &&
      running) {
    Log(Describe(ch) + ": " + name + " refused: the TPM is running (CMD_STOP first)");
    return Queue(ch, Refusal(c, swtpm::kResBadOrdinal));
  }
  auto answer = [&](const PtmStatus& s) {
    if (!s.ok())
      Log(Describe(ch) + ": " + name + ": " + swtpm::ResultName(s.result) + ": " + s.why);
    Queue(ch, swtpm::EncodeResult(s.result));
  };

  switch (c) {
    case Command::kGetCapability:
      return Queue(ch, swtpm::EncodeCapability(Capabilities(g.policy)));
    case Command::kInit:
      return answer(tpm_.Init(req.init_flags));
    case Command::kStop:
      tpm_.Stop();
      return Queue(ch, swtpm::EncodeResult(swtpm::kResSuccess));
    case Command::kShutdown:
      tpm_.Stop();
      Queue(ch, swtpm::EncodeResult(swtpm::kResSuccess));
      FlushBlocking(ch);
      Log(Describe(ch) + ": CMD_SHUTDOWN: stopping");
      stop_ = true;
      return;
    case Command::kGetTpmEstablished: {
      TpmService::Established e = tpm_.GetEstablished();
      if (!e.status.ok()) return answer(e.status);
      return Queue(ch, swtpm::EncodeEstablished(swtpm::kResSuccess, e.bit));
    }
    case Command::kSetLocality:
      if (req.locality > swtpm::kMaxLocality) {
        return answer(
            PtmStatus::Failure(swtpm::kResBadLocality, "locality " + std::to_string(req.locality)));
      }
      g.locality = req.locality;
      return Queue(ch, swtpm::EncodeResult(swtpm::kResSuccess));
    case Command::kResetTpmEstablished:
      return answer(tpm_.ResetEstablished(req.locality));
    case Command::kHashStart:
      return answer(tpm_.HashStart());
    case Command::kHashData:
      return answer(tpm_.HashData(req.data));
    case Command::kHashEnd:
      return answer(tpm_.HashEnd());
    case Command::kCancelTpmCmd:
      return answer(tpm_.Cancel());
    case Command::kStoreVolatile:
      return answer(tpm_.StoreVolatile());
    case Command::kGetStateBlob: {
      TpmService::StateBlob b = tpm_.GetStateBlob(req.blob_type, req.offset);
      if (!b.status.ok()) {
        Log(Describe(ch) + ": " + name + " " + swtpm::BlobTypeName(req.blob_type) + ": " +
            swtpm::ResultName(b.status.result) + ": " + b.status.why);
      }
      return Queue(ch, swtpm::EncodeStateBlob(b.status.result, b.flags, b.bytes));
    }
    case Command::kSetStateBlob:
      return answer(tpm_.SetStateBlob(req.blob_type, req.state_flags, req.data));
    case Command::kGetConfig:
      return Queue(ch, swtpm::EncodeConfig(swtpm::kResSuccess, tpm_.ConfigFlags()));
    case Command::kSetDataFd: {
      if (g.has_datafd) {
        return answer(PtmStatus::Failure(swtpm::kResIoError, "this group already has a data fd"));
      }
      if (channels_.size() >= options_.max_channels) {
        return answer(PtmStatus::Failure(swtpm::kResIoError, "too many open channels"));
      }
      if (!AddChannel(std::move(fds[0]), ch.group, false, true)) {
        return answer(PtmStatus::Failure(swtpm::kResIoError, "the data fd is unusable"));
      }
      return Queue(ch, swtpm::EncodeResult(swtpm::kResSuccess));
    }
    case Command::kSetBufferSize: {
      TpmService::BufferSize s = tpm_.SetBufferSize(req.buffer_size);
      if (!s.status.ok()) return answer(s.status);
      return Queue(ch, swtpm::EncodeBufferSize(swtpm::kResSuccess, s.sizes));
    }
    case Command::kGetInfo: {
      TpmService::Info info = tpm_.GetInfo(req.info_flags);
      if (!info.status.ok()) return answer(info.status);
      // swtpm: the text travels with its NUL, in chunks from `offset`.
      const size_t total = info.text.size() + 1;
      if (req.offset >= info.text.size()) {
        return answer(PtmStatus::Failure(swtpm::kResBadParameter, "offset beyond the info text"));
      }
      const size_t length = std::min<size_t>(total - req.offset, swtpm::kMaxInfoChunk);
      std::span<const uint8_t> text(reinterpret_cast<const uint8_t*>(info.text.c_str()), total);
      return Queue(ch, swtpm::EncodeInfo(swtpm::kResSuccess, static_cast<uint32_t>(total),
                                         text.subspan(req.offset, length)));
    }
    case Command::kLockStorage:
      // The state directory is this process's alone (one vtpm process per VM).
      return Queue(ch, swtpm::EncodeResult(swtpm::kResSuccess));
  }
}

void SwtpmServer::Queue(Channel& ch, std::vector<uint8_t> bytes) {
  if (ch.closed) return;
  ch.out = std::move(bytes);
  ch.out_pos = 0;
  Flush(ch);
}

void SwtpmServer::Flush(Channel& ch) {
  while (!ch.closed && ch.out_pos < ch.out.size()) {
    const uint8_t* p = ch.out.data() + ch.out_pos;
    const size_t len = ch.out.size() - ch.out_pos;
    ssize_t n;
    if (ch.is_socket) {
      n = SendWithFds(ch.fd.get(), {p, len}, {}, MSG_DONTWAIT);
      if (n < 0 && errno == ENOTSOCK) {
        ch.is_socket = false;
        n = ::write(ch.fd.get(), p, len);
      }
    } else {
      n = ::write(ch.fd.get(), p, len);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!ch.deadline) ch.deadline = Clock::now() + options_.message_deadline;
        return;
      }
      return Close(ch, std::string("send failed: ") + std::strerror(errno), errno != EPIPE);
    }
    ch.out_pos += static_cast<size_t>(n);
  }
  if (ch.closed) return;
  ch.out.clear();
  ch.out_pos = 0;
  ch.deadline.reset();
  if (!ch.in.empty()) ch.deadline = Clock::now() + options_.message_deadline;
}

void SwtpmServer::FlushBlocking(Channel& ch) {
  const Clock::time_point until = Clock::now() + options_.message_deadline;
  while (!ch.closed && !ch.out.empty()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return Close(ch, "peer did not take its answer in time", true);
    auto ready = EventLoop::WaitFd(ch.fd.get(), EPOLLOUT,
                                   static_cast<int>(std::min<long long>(left, INT_MAX)));
    if (!ready) return Close(ch, ready.error().ToString(), true);
    Flush(ch);
  }
}

void SwtpmServer::OnChannelReady(Channel& ch, uint32_t events) {
  if (stop_ || ch.closed) return;
  if (!ch.out.empty()) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) Flush(ch);
    if (ch.out.empty()) Process(ch);  // requests that were waiting behind the answer
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) Read(ch);
}

Result<void> SwtpmServer::Run() {
  struct FlushLog {
    RepeatLimiter& log;
    ~FlushLog() { log.Flush(); }
  } flush_log{log_};
  ASSIGN_OR_RETURN(EventLoop loop, EventLoop::Create());
  loop_.emplace(std::move(loop));
  // Leaves no fd watched: a server that runs again (or closes channels after) starts anew.
  struct DropLoop {
    SwtpmServer& s;
    ~DropLoop() {
      for (auto& ch : s.channels_) ch->watched.reset();
      for (Listener& l : s.listeners_) l.watched.reset();
      s.loop_.reset();
    }
  } drop_loop{*this};
  while (true) {
    if (stop_) {
      if (stop_error_) return *stop_error_;
      return Ok();
    }
    std::erase_if(channels_, [](const std::unique_ptr<Channel>& ch) { return ch->closed; });
    if (channels_.empty() && listeners_.empty()) {
      Log("no channels or listeners left; stopping");
      return Ok();
    }

    std::optional<Clock::time_point> next;
    for (const auto& ch : channels_) {
      if (ch->deadline && (!next || *ch->deadline < *next)) next = ch->deadline;
    }
    const size_t channel_count = channels_.size();
    if (accept_paused_until_ && *accept_paused_until_ <= Clock::now()) accept_paused_until_.reset();
    if (accept_paused_until_ && !listeners_.empty() && (!next || *accept_paused_until_ < *next)) {
      next = accept_paused_until_;
    }
    const bool accepting = channels_.size() < options_.max_channels && !accept_paused_until_;
    // What each fd waits for now: a channel its answer's room or its next bytes, a listener
    // a connection while there is room for one.
    for (size_t i = 0; i < channel_count; ++i) {
      Channel& ch = *channels_[i];
      const uint32_t events = ch.out.empty() ? EPOLLIN : EPOLLOUT;
      if (ch.watched == events) continue;
      Result<void> r = ch.watched ? loop_->Modify(ch.fd.get(), events)
                                  : loop_->Add(ch.fd.get(), events, [this, c = &ch](uint32_t ev) {
                                      OnChannelReady(*c, ev);
                                    });
      if (!r) {
        Close(ch, r.error().sys_errno() == EBADF ? "fd is not open" : r.error().ToString(), true);
        continue;
      }
      ch.watched = events;
    }
    for (Listener& l : listeners_) {
      if (!accepting && l.watched) {
        loop_->Remove(l.fd.get());
        l.watched.reset();
      } else if (accepting && !l.watched) {
        RETURN_IF_ERROR(loop_->Add(l.fd.get(), EPOLLIN, [this, li = &l](uint32_t ev) {
          if (!stop_ && (ev & EPOLLIN)) Accept(*li);
        }));
        l.watched = EPOLLIN;
      }
    }
    if (stop_) continue;

    int timeout = -1;
    if (next) {
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
      timeout = static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
    }
    if (auto ready = loop_->RunOnce(timeout); !ready) {
      return ready.error().Wrap("swtpm server");
    }

    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < channel_count && !stop_; ++i) {
      Channel& ch = *channels_[i];
      if (!ch.closed && ch.deadline && *ch.deadline <= now) {
        Close(ch,
              ch.out.empty() ? "peer stalled inside a message past the deadline"
                             : "peer did not take its answer before the deadline",
              true);
      }
    }
  }
}

}  // namespace vmm::vtpm
