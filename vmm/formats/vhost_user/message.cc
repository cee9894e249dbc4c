#include "vmm/formats/vhost_user/message.h"

#include <string>
#include <utility>

#include "base/bytes.h"

namespace vmm::vhost_user {
namespace {

// The payload layouts, numbered as the alternatives of Payload.
enum class Kind : uint8_t {
  kNone,
  kU64,
  kVringState,
  kVringAddress,
  kMemoryTable,
  kSingleRegion,
  kConfig,
  kVringFd,
};
static_assert(std::variant_size_v<Payload> == 8);

// How many fds a request carries ("Communication" lists the requests that carry any).
enum class Fds : uint8_t { kNone, kOne, kPerRegion, kUnlessNoFd, kNoneOrOneIgnored };

struct Rule {
  Request request;
  const char* name;
  bool supported;
  Kind request_kind;
  Fds fds;
  Kind reply_kind;  // every request may be answered under REPLY_ACK: u64 unless it has a body
};

// Short names for the table below.
constexpr Kind kNo = Kind::kNone, kU64 = Kind::kU64, kState = Kind::kVringState,
               kAddr = Kind::kVringAddress, kTable = Kind::kMemoryTable,
               kRegion = Kind::kSingleRegion, kConf = Kind::kConfig, kVFd = Kind::kVringFd;
constexpr bool kYes = true;

// A request we refuse: no body, no fds, answered (when asked) with a u64.
constexpr Rule Unsupported(Request request, const char* name) {
  return {request, name, false, kNo, Fds::kNone, kU64};
}

// In code order from 1 with no gaps ("Front-end message types").
constexpr Rule kRules[] = {
    {Request::kGetFeatures, "VHOST_USER_GET_FEATURES", kYes, kNo, Fds::kNone, kU64},
    {Request::kSetFeatures, "VHOST_USER_SET_FEATURES", kYes, kU64, Fds::kNone, kU64},
    {Request::kSetOwner, "VHOST_USER_SET_OWNER", kYes, kNo, Fds::kNone, kU64},
    {Request::kResetOwner, "VHOST_USER_RESET_OWNER", kYes, kNo, Fds::kNone, kU64},
    // Its postcopy reply (a table) is not supported: replies are REPLY_ACK only.
    {Request::kSetMemTable, "VHOST_USER_SET_MEM_TABLE", kYes, kTable, Fds::kPerRegion, kU64},
    Unsupported(Request::kSetLogBase, "VHOST_USER_SET_LOG_BASE"),
    Unsupported(Request::kSetLogFd, "VHOST_USER_SET_LOG_FD"),
    {Request::kSetVringNum, "VHOST_USER_SET_VRING_NUM", kYes, kState, Fds::kNone, kU64},
    {Request::kSetVringAddr, "VHOST_USER_SET_VRING_ADDR", kYes, kAddr, Fds::kNone, kU64},
    {Request::kSetVringBase, "VHOST_USER_SET_VRING_BASE", kYes, kState, Fds::kNone, kU64},
    {Request::kGetVringBase, "VHOST_USER_GET_VRING_BASE", kYes, kState, Fds::kNone, kState},
    {Request::kSetVringKick, "VHOST_USER_SET_VRING_KICK", kYes, kVFd, Fds::kUnlessNoFd, kU64},
    {Request::kSetVringCall, "VHOST_USER_SET_VRING_CALL", kYes, kVFd, Fds::kUnlessNoFd, kU64},
    {Request::kSetVringErr, "VHOST_USER_SET_VRING_ERR", kYes, kVFd, Fds::kUnlessNoFd, kU64},
    {Request::kGetProtocolFeatures, "VHOST_USER_GET_PROTOCOL_FEATURES", kYes, kNo, Fds::kNone,
     kU64},
    {Request::kSetProtocolFeatures, "VHOST_USER_SET_PROTOCOL_FEATURES", kYes, kU64, Fds::kNone,
     kU64},
    {Request::kGetQueueNum, "VHOST_USER_GET_QUEUE_NUM", kYes, kNo, Fds::kNone, kU64},
    {Request::kSetVringEnable, "VHOST_USER_SET_VRING_ENABLE", kYes, kState, Fds::kNone, kU64},
    Unsupported(Request::kSendRarp, "VHOST_USER_SEND_RARP"),
    Unsupported(Request::kNetSetMtu, "VHOST_USER_NET_SET_MTU"),
    {Request::kSetBackendReqFd, "VHOST_USER_SET_BACKEND_REQ_FD", kYes, kNo, Fds::kOne, kU64},
    Unsupported(Request::kIotlbMsg, "VHOST_USER_IOTLB_MSG"),
    Unsupported(Request::kSetVringEndian, "VHOST_USER_SET_VRING_ENDIAN"),
    {Request::kGetConfig, "VHOST_USER_GET_CONFIG", kYes, kConf, Fds::kNone, kConf},
    {Request::kSetConfig, "VHOST_USER_SET_CONFIG", kYes, kConf, Fds::kNone, kU64},
    Unsupported(Request::kCreateCryptoSession, "VHOST_USER_CREATE_CRYPTO_SESSION"),
    Unsupported(Request::kCloseCryptoSession, "VHOST_USER_CLOSE_CRYPTO_SESSION"),
    Unsupported(Request::kPostcopyAdvise, "VHOST_USER_POSTCOPY_ADVISE"),
    Unsupported(Request::kPostcopyListen, "VHOST_USER_POSTCOPY_LISTEN"),
    Unsupported(Request::kPostcopyEnd, "VHOST_USER_POSTCOPY_END"),
    Unsupported(Request::kGetInflightFd, "VHOST_USER_GET_INFLIGHT_FD"),
    Unsupported(Request::kSetInflightFd, "VHOST_USER_SET_INFLIGHT_FD"),
    Unsupported(Request::kGpuSetSocket, "VHOST_USER_GPU_SET_SOCKET"),
    {Request::kResetDevice, "VHOST_USER_RESET_DEVICE", kYes, kNo, Fds::kNone, kU64},
    Unsupported(Request::kVringKick, "VHOST_USER_VRING_KICK"),
    {Request::kGetMaxMemSlots, "VHOST_USER_GET_MAX_MEM_SLOTS", kYes, kNo, Fds::kNone, kU64},
    {Request::kAddMemReg, "VHOST_USER_ADD_MEM_REG", kYes, kRegion, Fds::kOne, kU64},
    // "REM_MEM_REG": a back-end may accept one fd from older front-ends but must not use it.
    {Request::kRemMemReg, "VHOST_USER_REM_MEM_REG", kYes, kRegion, Fds::kNoneOrOneIgnored, kU64},
    {Request::kSetStatus, "VHOST_USER_SET_STATUS", kYes, kU64, Fds::kNone, kU64},
    {Request::kGetStatus, "VHOST_USER_GET_STATUS", kYes, kNo, Fds::kNone, kU64},
};

constexpr bool InCodeOrder() {
  for (size_t i = 0; i < std::size(kRules); ++i)
    if (static_cast<uint32_t>(kRules[i].request) != i + 1) return false;
  return true;
}
static_assert(InCodeOrder(), "FindRule indexes kRules by request code");

const Rule* FindRule(uint32_t code) {
  if (code == 0 || code > std::size(kRules)) return nullptr;
  return &kRules[code - 1];
}

Error Violation(const std::string& what) { return Error(ErrorKind::kProtocol, what); }

// Reads fixed fields front to back; the caller has checked the size first.
struct Reader {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
  template <typename T>
  T Next() {
    T v = LoadLe<T>(bytes, pos).value_or(0);
    pos += sizeof(T);
    return v;
  }
};

struct Writer {
  std::vector<uint8_t> bytes;
  template <typename T>
  void Put(T v) {
    bytes.resize(bytes.size() + sizeof(T));
    StoreLe<T>(bytes, bytes.size() - sizeof(T), v);
  }
};

// Braced initialisers evaluate in order, so fields are read front to back.
MemoryRegion ReadRegion(Reader& r) {
  return {r.Next<uint64_t>(), r.Next<uint64_t>(), r.Next<uint64_t>(), r.Next<uint64_t>()};
}

void WriteRegion(Writer& w, const MemoryRegion& m) {
  for (uint64_t v : {m.guest_phys_addr, m.memory_size, m.userspace_addr, m.mmap_offset}) w.Put(v);
}

bool Wraps(uint64_t base, uint64_t size) { return size - 1 > UINT64_MAX - base; }

bool Overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a <= b + (b_size - 1) && b <= a + (a_size - 1);  // callers checked nothing wraps
}

Result<void> CheckRegion(const MemoryRegion& m, const std::string& where) {
  if (m.memory_size == 0) return Violation(where + ": memory_size is 0");
  if (Wraps(m.guest_phys_addr, m.memory_size))
    return Violation(where + ": guest_phys_addr + memory_size wraps past 2^64");
  if (Wraps(m.userspace_addr, m.memory_size))
    return Violation(where + ": userspace_addr + memory_size wraps past 2^64");
  if (Wraps(m.mmap_offset, m.memory_size))
    return Violation(where + ": mmap_offset + memory_size wraps past 2^64");
  if (m.mmap_offset + (m.memory_size - 1) > static_cast<uint64_t>(INT64_MAX))
    return Violation(where + ": mmap_offset + memory_size is beyond any file (off_t)");
  return Ok();
}

Result<void> CheckIndex(uint32_t index, const std::string& where) {
  if (index > kMaxVringIndex)
    return Violation(where + ": vring index " + std::to_string(index) + " is above 255");
  return Ok();
}

// Parses and checks the payload layout `kind` (size, then field ranges).
Result<Payload> ParsePayload(Kind kind, std::span<const uint8_t> p, bool reply,
                             const std::string& where) {
  auto need = [&](size_t size) -> Result<void> {
    if (p.size() != size)
      return Violation(where + ": payload is " + std::to_string(p.size()) +
                       " bytes, the request needs exactly " + std::to_string(size));
    return Ok();
  };
  Reader r{p};
  switch (kind) {
    case Kind::kNone:
      RETURN_IF_ERROR(need(0));
      return Payload{};
    case Kind::kU64:
      RETURN_IF_ERROR(need(8));
      return Payload{r.Next<uint64_t>()};
    case Kind::kVringState: {
      RETURN_IF_ERROR(need(8));
      VringState s{r.Next<uint32_t>(), r.Next<uint32_t>()};
      RETURN_IF_ERROR(CheckIndex(s.index, where));
      return Payload{s};
    }
    case Kind::kVringAddress: {
      RETURN_IF_ERROR(need(40));
      VringAddress a{r.Next<uint32_t>(), r.Next<uint32_t>(), r.Next<uint64_t>(),
                     r.Next<uint64_t>(), r.Next<uint64_t>(), r.Next<uint64_t>()};
      RETURN_IF_ERROR(CheckIndex(a.index, where));
      if (a.flags & ~kVringFlagLog)
        return Violation(where + ": unknown vring flags " + std::to_string(a.flags));
      return Payload{a};
    }
    case Kind::kMemoryTable: {
      if (p.size() < kMemoryTableHeaderSize)
        return Violation(where + ": payload of " + std::to_string(p.size()) +
                         " bytes is shorter than the 8-byte region count");
      const uint32_t n = r.Next<uint32_t>();
      r.Next<uint32_t>();  // padding
      if (n == 0 || n > kMaxMemoryRegions)
        return Violation(where + ": nregions is " + std::to_string(n) + ", must be 1..8");
      RETURN_IF_ERROR(need(kMemoryTableHeaderSize + n * kMemoryRegionSize));
      MemoryTable t;
      for (uint32_t i = 0; i < n; ++i) {
        t.regions.push_back(ReadRegion(r));
        RETURN_IF_ERROR(CheckRegion(t.regions.back(), where + ": region " + std::to_string(i)));
        for (uint32_t j = 0; j < i; ++j) {
          const MemoryRegion& a = t.regions[j];
          const MemoryRegion& b = t.regions[i];
          if (Overlap(a.guest_phys_addr, a.memory_size, b.guest_phys_addr, b.memory_size))
            return Violation(where + ": regions " + std::to_string(j) + " and " +
                             std::to_string(i) + " overlap in guest-physical space");
          if (Overlap(a.userspace_addr, a.memory_size, b.userspace_addr, b.memory_size))
            return Violation(where + ": regions " + std::to_string(j) + " and " +
                             std::to_string(i) + " overlap in front-end user addresses");
        }
      }
      return Payload{std::move(t)};
    }
    case Kind::kSingleRegion: {
      RETURN_IF_ERROR(need(8 + kMemoryRegionSize));
      r.Next<uint64_t>();  // padding
      SingleRegion s{ReadRegion(r)};
      RETURN_IF_ERROR(CheckRegion(s.region, where));
      return Payload{s};
    }
    case Kind::kConfig: {
      if (p.size() < kConfigHeaderSize)
        return Violation(where + ": payload of " + std::to_string(p.size()) +
                         " bytes is shorter than the 12-byte config header");
      DeviceConfig c;
      c.offset = r.Next<uint32_t>();
      const uint32_t size = r.Next<uint32_t>();
      c.flags = r.Next<uint32_t>();
      // A zero-sized GET_CONFIG reply is how a back-end reports failure ("GET_CONFIG").
      if ((size == 0 && !reply) || size > kMaxConfigSize)
        return Violation(where + ": config size " + std::to_string(size) +
                         (reply ? " is above 256" : " is not 1..256"));
      RETURN_IF_ERROR(need(kConfigHeaderSize + size));
      if (uint64_t{c.offset} + size > kMaxConfigSize)
        return Violation(where + ": config offset " + std::to_string(c.offset) + " + size " +
                         std::to_string(size) + " is beyond 256 bytes of config space");
      if (c.flags != kConfigFlagWritable && c.flags != kConfigFlagMigration)
        return Violation(where + ": config flags " + std::to_string(c.flags) + " not 0 or 1");
      c.bytes.assign(p.begin() + kConfigHeaderSize, p.end());
      return Payload{std::move(c)};
    }
    case Kind::kVringFd: {
      RETURN_IF_ERROR(need(8));
      const uint64_t v = r.Next<uint64_t>();
      if (v & ~(kVringIndexMask | kVringNoFd))
        return Violation(where + ": bits above 8 are set in the vring fd payload");
      return Payload{VringFd{static_cast<uint32_t>(v & kVringIndexMask), (v & kVringNoFd) != 0}};
    }
  }
  return Error(ErrorKind::kInternal, where + ": unknown payload kind");
}

struct Parsed {
  Request request;
  uint32_t flags;
  Payload payload;
  size_t fds_kept;  // fds beyond this many are closed unused (REM_MEM_REG)
};

// Everything Decode checks, over a count of fds, so Encode can run it too.
Result<Parsed> Parse(std::span<const uint8_t> bytes, size_t fd_count, Direction direction) {
  Reader r{bytes};
  if (bytes.size() < kHeaderSize)
    return Violation("vhost-user message of " + std::to_string(bytes.size()) +
                     " bytes is shorter than the 12-byte header");
  const uint32_t code = r.Next<uint32_t>();
  const uint32_t flags = r.Next<uint32_t>();
  const uint32_t size = r.Next<uint32_t>();
  const Rule* rule = FindRule(code);
  if (rule == nullptr) return Violation("unknown vhost-user request " + std::to_string(code));
  const bool reply = direction == Direction::kReply;
  const std::string where = std::string(rule->name) + (reply ? " reply" : "");
  if (!rule->supported) return Violation(where + ": request is not supported");
  if ((flags & kVersionMask) != kVersion)
    return Violation(where + ": version " + std::to_string(flags & kVersionMask) + ", not 1");
  if (flags & ~(kVersionMask | kFlagReply | kFlagNeedReply))
    return Violation(where + ": unknown header flags " + std::to_string(flags));
  if (reply && !(flags & kFlagReply)) return Violation(where + ": REPLY flag is not set");
  if (!reply && (flags & kFlagReply)) return Violation(where + ": REPLY flag set on a request");
  if (reply && (flags & kFlagNeedReply)) return Violation(where + ": NEED_REPLY set on a reply");
  if (bytes.size() - kHeaderSize != size)
    return Violation(where + ": header size field is " + std::to_string(size) + " but " +
                     std::to_string(bytes.size() - kHeaderSize) + " payload bytes followed");

  const Kind kind = reply ? rule->reply_kind : rule->request_kind;
  ASSIGN_OR_RETURN(Payload payload, ParsePayload(kind, bytes.subspan(kHeaderSize), reply, where));

  if (const auto* state = std::get_if<VringState>(&payload); state != nullptr && !reply) {
    const uint32_t num = state->num;
    if (rule->request == Request::kSetVringNum && (num == 0 || num > kMaxVringSize))
      return Violation(where + ": queue size " + std::to_string(num) + " is not 1..32768");
    if (rule->request == Request::kSetVringEnable && num > 1)
      return Violation(where + ": enable value must be 0 or 1");
  }

  // How many fds this message must carry, and the rule to quote when it does not.
  size_t want = 0;
  const char* fd_rule = reply ? "replies carry no fds" : "takes no fds";
  if (!reply && rule->fds == Fds::kOne) {
    want = 1;
    fd_rule = "needs exactly 1 fd";
  } else if (!reply && rule->fds == Fds::kPerRegion) {
    want = std::get<MemoryTable>(payload).regions.size();
    fd_rule = "needs exactly one fd per region";
  } else if (!reply && rule->fds == Fds::kUnlessNoFd) {
    want = std::get<VringFd>(payload).no_fd ? 0 : 1;
    fd_rule = want ? "needs exactly 1 fd without NOFD (0x100)" : "takes no fd with NOFD (0x100)";
  } else if (!reply && rule->fds == Fds::kNoneOrOneIgnored) {
    want = fd_count == 1 ? 1 : 0;
    fd_rule = "takes no fd (one is tolerated, and closed)";
  }
  if (fd_count != want)
    return Violation(where + ": arrived with " + std::to_string(fd_count) + " fds but " + fd_rule);
  const size_t kept = rule->fds == Fds::kNoneOrOneIgnored ? 0 : want;
  return Parsed{rule->request, flags, std::move(payload), kept};
}

std::vector<uint8_t> Serialize(Request request, uint32_t flags, const Payload& payload) {
  Writer w;
  w.Put(static_cast<uint32_t>(request));
  w.Put(flags);
  w.Put(uint32_t{0});  // size, filled in below
  if (const auto* v = std::get_if<uint64_t>(&payload)) {
    w.Put(*v);
  } else if (const auto* s = std::get_if<VringState>(&payload)) {
    w.Put(s->index);
    w.Put(s->num);
  } else if (const auto* a = std::get_if<VringAddress>(&payload)) {
    for (uint32_t v : {a->index, a->flags}) w.Put(v);
    for (uint64_t v : {a->descriptor, a->used, a->available, a->log}) w.Put(v);
  } else if (const auto* t = std::get_if<MemoryTable>(&payload)) {
    w.Put(static_cast<uint32_t>(t->regions.size()));
    w.Put(uint32_t{0});
    for (const MemoryRegion& m : t->regions) WriteRegion(w, m);
  } else if (const auto* one = std::get_if<SingleRegion>(&payload)) {
    w.Put(uint64_t{0});
    WriteRegion(w, one->region);
  } else if (const auto* c = std::get_if<DeviceConfig>(&payload)) {
    w.Put(c->offset);
    w.Put(static_cast<uint32_t>(c->bytes.size()));
    w.Put(c->flags);
    w.bytes.insert(w.bytes.end(), c->bytes.begin(), c->bytes.end());
  } else if (const auto* f = std::get_if<VringFd>(&payload)) {
    w.Put(uint64_t{f->index} | (f->no_fd ? kVringNoFd : 0));
  }
  StoreLe<uint32_t>(w.bytes, 8, static_cast<uint32_t>(w.bytes.size() - kHeaderSize));
  return std::move(w.bytes);
}

Result<std::vector<uint8_t>> Encode(Request request, uint32_t flags, const Payload& payload,
                                    size_t fd_count, Direction direction) {
  const Rule* rule = FindRule(static_cast<uint32_t>(request));
  if (rule != nullptr) {
    const Kind kind = direction == Direction::kReply ? rule->reply_kind : rule->request_kind;
    if (payload.index() != static_cast<size_t>(kind))
      return Error(ErrorKind::kInternal,
                   std::string(rule->name) + ": wrong payload type for this message");
  }
  if (const auto* c = std::get_if<DeviceConfig>(&payload); c && c->bytes.size() > kMaxConfigSize)
    return Violation(std::string(RequestName(request)) + ": config access above 256 bytes");
  if (const auto* f = std::get_if<VringFd>(&payload); f && f->index > kMaxVringIndex)
    return Violation(std::string(RequestName(request)) + ": vring index above 255");
  if (const auto* t = std::get_if<MemoryTable>(&payload);
      t && t->regions.size() > kMaxMemoryRegions)
    return Violation(std::string(RequestName(request)) + ": more than 8 memory regions");
  std::vector<uint8_t> bytes = Serialize(request, flags, payload);
  auto checked = Parse(bytes, fd_count, direction);
  if (!checked.has_value()) return checked.error().Wrap("refusing to send");
  return bytes;
}

}  // namespace

const char* RequestName(Request request) {
  const Rule* rule = FindRule(static_cast<uint32_t>(request));
  return rule != nullptr ? rule->name : "unknown vhost-user request";
}

bool IsSupported(Request request) {
  const Rule* rule = FindRule(static_cast<uint32_t>(request));
  return rule != nullptr && rule->supported;
}

Result<Message> Decode(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds,
                       Direction direction) {
  // On any error `fds` goes out of scope here, closing every descriptor that came along.
  ASSIGN_OR_RETURN(Parsed parsed, Parse(bytes, fds.size(), direction));
  fds.resize(parsed.fds_kept);  // closes a tolerated REM_MEM_REG fd unused
  Message m;
  m.request = parsed.request;
  m.flags = parsed.flags;
  m.payload = std::move(parsed.payload);
  m.fds = std::move(fds);
  return m;
}

Result<std::vector<uint8_t>> EncodeRequest(Request request, const Payload& payload, size_t fd_count,
                                           bool need_reply) {
  return Encode(request, kVersion | (need_reply ? kFlagNeedReply : 0), payload, fd_count,
                Direction::kRequest);
}

Result<std::vector<uint8_t>> EncodeReply(Request request, const Payload& payload) {
  return Encode(request, kVersion | kFlagReply, payload, 0, Direction::kReply);
}

}  // namespace vmm::vhost_user
