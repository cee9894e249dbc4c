// SwtpmServer: swtpm's socket protocol (swtpm_protocol.h) served over any number of
// channel groups, single-threaded, from one event loop (base/event_loop.h).
//
//   EngineService tpm(*engine, key, vm_id);
//   SwtpmServer server(tpm, [](const std::string& m) { Log(m); });
//   server.AddGroup({.platform = true, .locality = 3, .stop_when_closed = true},
//                   std::move(manager_ctrl), std::move(manager_data));
//   server.AddGroup({}, std::move(guest_ctrl), std::move(guest_data));  // the guest: locality 0
//   RETURN_IF_ERROR(server.Run());
//
// A group is one policy shared by control channels and data channels: given to AddGroup,
// accepted from a listener (tpm2-tss's swtpm TCTI connects anew for every control call
// and every TPM command, so the group, not the connection, holds the locality), or passed
// by CMD_SET_DATAFD (QEMU). Data channels carry raw TPM commands, executed at the
// group's locality; a non-platform group's commands run at its fixed policy locality
// (the guest: 0) whatever any other group does, since the TPM's locality is set from the
// sending group before every command.
//
// Who may send what: a platform group everything swtpm implements (GET_INFO and
// LOCK_STORAGE too; never the TCG command header of PTM_CAP_SEND_COMMAND_HEADER); any other
// group only GET_CAPABILITY (which then reports only what it may use),
// GET_TPMESTABLISHED, CANCEL_TPM_CMD and GET_CONFIG. Anything else is answered with
// TPM_BAD_ORDINAL (swtpm's answer to a command it will not run) and logged.
//
// Power (swtpm's rules, checked here): the TPM service says whether the TPM runs. A data
// command while it does not is answered TPM_RC_FAILURE (as swtpm does before CMD_INIT);
// GET_TPMESTABLISHED, RESET_TPMESTABLISHED, HASH_*, CANCEL_TPM_CMD, STORE_VOLATILE and
// GET_STATEBLOB need it running, SET_STATEBLOB and a nonzero SET_BUFFERSIZE need it
// stopped (CMD_STOP); otherwise TPM_BAD_ORDINAL.
//
// Resources: at most ServerOptions::max_channels channels (derive it from RLIMIT_NOFILE
// with MaxChannelsForFdLimit); listeners pause at the limit and after accept4 fails for
// want of fds or memory, and resume when a channel closes. Identical log lines in a row are
// collapsed (RepeatLimiter), so no condition can flood the log.
//
// Hostile peers: every channel is non-blocking. A malformed message (unknown command,
// size out of bounds, bad field, fds on anything but SET_DATAFD, or on a data channel)
// closes that channel with a log line naming the reason; the others carry on. A peer that
// stops mid-message, or does not take its answer, for longer than the message deadline is
// closed too. Control requests may be pipelined; each channel handles one request at a
// time and reads no further while its answer is unsent.
//
// Syscalls (vtpm seccomp role): epoll, recvmsg (MSG_DONTWAIT|MSG_CMSG_CLOEXEC), sendmsg
// (MSG_DONTWAIT|MSG_NOSIGNAL), read/write (only for a passed data fd that is not a socket:
// recvmsg/sendmsg said ENOTSOCK), accept4 (SOCK_NONBLOCK|SOCK_CLOEXEC), fcntl
// (F_GETFL/F_SETFL O_NONBLOCK), close, and clock_gettime(CLOCK_MONOTONIC) via
// std::chrono::steady_clock (the vDSO normally answers it).
//
// Ownership: the server borrows `tpm` (must outlive it) and owns every fd given to it or
// accepted; all are closed when the server is destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vtpm/process/repeat_limiter.h"
#include "vtpm/process/tpm_service.h"

namespace vmm::vtpm {

struct ChannelPolicy {
  bool platform = false;          // may INIT, SHUTDOWN, STOP, SET_STATEBLOB, GET_STATEBLOB, HASH_*,
                                  // RESET_TPMESTABLISHED, SET_LOCALITY, SET_DATAFD, SET_BUFFERSIZE,
                                  // STORE_VOLATILE, GET_INFO, LOCK_STORAGE
  uint8_t locality = 0;           // the locality of this group's data commands (0..4;
                                  // SET_LOCALITY changes it if platform)
  bool stop_when_closed = false;  // Run() returns once the control channel given to AddGroup
                                  // closes (our manager's channel); accepted ones do not count
};

struct ServerOptions {
  // How long a peer may take to finish sending a message it has begun, or to take an
  // answer we are writing, before its channel is closed.
  std::chrono::milliseconds message_deadline{5000};
  // Channels open at once (given, accepted and passed); listeners are not watched at the
  // limit, and watched again when a channel closes. Each channel is an fd: keep the limit
  // below the process's RLIMIT_NOFILE (SwtpmServer::MaxChannelsForFdLimit).
  size_t max_channels = 64;
};

class SwtpmServer {
 public:
  SwtpmServer(TpmService& tpm, std::function<void(const std::string&)> log,
              ServerOptions options = {});
  ~SwtpmServer();
  SwtpmServer(const SwtpmServer&) = delete;
  SwtpmServer& operator=(const SwtpmServer&) = delete;

  // A group = one control channel (may be invalid) + its data channels (`data` may be
  // invalid). Returns the group id (>= 0), or -1 (logged) for a locality above 4.
  int AddGroup(ChannelPolicy policy, UniqueFd control, UniqueFd data);

  // Accepted connections on `listening` (a bound, listening stream socket) join `group`
  // as control or data channels. Ignored (logged) if the group does not exist.
  void AddListener(UniqueFd listening, int group, bool control);

  // Serves until: CMD_SHUTDOWN from a platform channel (Ok, after its answer is sent); the
  // AddGroup control channel of a stop_when_closed group closes (Ok on an orderly close, the
  // reason as a kProtocol/kSystem Error otherwise); nothing is left to serve (Ok); or
  // the event loop fails (Error).
  Result<void> Run();

  // The GET_CAPABILITY answer a group with `policy` gets.
  static uint32_t Capabilities(const ChannelPolicy& policy);

  // Fds kept free beside the channels for those that come and go: the fds one message may
  // carry (SET_DATAFD: one, but a read can bring up to 8 before it is judged) and a state
  // file the TPM service opens while it saves, with one to spare.
  static constexpr size_t kFdReserve = 10;
  // The channel limit for a process whose RLIMIT_NOFILE is `nofile` and that holds
  // `other_fds` fds besides its channels (stderr, listeners, a state directory): so that
  // accept4 never fails with EMFILE. At least 1, at most the default (64).
  static size_t MaxChannelsForFdLimit(uint64_t nofile, size_t other_fds);

 private:
  struct Group;
  struct Channel;
  struct Listener;
  using Clock = std::chrono::steady_clock;

  bool AddChannel(UniqueFd fd, int group, bool control, bool from_datafd);
  void Accept(Listener& l);
  void Read(Channel& ch);
  void Process(Channel& ch);
  void HandleControl(Channel& ch, const swtpm::Request& req, std::vector<UniqueFd> fds);
  void HandleData(Channel& ch, std::span<const uint8_t> command);
  void Queue(Channel& ch, std::vector<uint8_t> bytes);
  void Flush(Channel& ch);
  void FlushBlocking(Channel& ch);
  void OnChannelReady(Channel& ch, uint32_t events);
  void Close(Channel& ch, const std::string& why, bool error);
  std::string Describe(const Channel& ch) const;
  void Log(const std::string& m) const;

  TpmService& tpm_;
  mutable RepeatLimiter log_;  // a condition that recurs logs once per window, with a count
  ServerOptions options_;
  std::vector<Group> groups_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<Listener> listeners_;
  bool stop_ = false;
  std::optional<Error> stop_error_;
  std::optional<EventLoop> loop_;  // while Run() runs
  // accept4 ran out of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): listeners are not
  // watched until then or until a channel closes, instead of waking the loop at once again.
  std::optional<Clock::time_point> accept_paused_until_;
};

}  // namespace vmm::vtpm
