#include "vtpm/state/sealed_state.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "base/unique_fd.h"

namespace vmm::vtpm {
namespace {

Result<void> ValidateName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == ".." ||
      name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return InvalidArgument("'" + std::string(name) +
                           "' is not a plain file name in the state directory");
  }
  return Ok();
}

// Reads up to out.size() bytes at `offset`; fewer only at end of file.
Result<size_t> PreadFull(int fd, std::span<uint8_t> out, uint64_t offset) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<void> PwriteFull(int fd, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write");
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<void> SyncAndClose(UniqueFd fd, const std::string& what) {
  if (fsync(fd.get()) != 0) return ErrnoError("fsync " + what);
  if (close(fd.release()) != 0) return ErrnoError("close " + what);
  return Ok();
}

// Reads the sealed file image: the header first, then no more than the header's bounded
// length plus one byte (so a longer file is caught without reading all of it).
Result<std::vector<uint8_t>> ReadSealedFile(int fd, const Expected& expected) {
  std::vector<uint8_t> file(kHeaderSize);
  ASSIGN_OR_RETURN(size_t got, PreadFull(fd, file, 0));
  file.resize(got);
  ASSIGN_OR_RETURN(SealedHeader h, ParseHeader(file, expected));
  const size_t want = kHeaderSize + h.plaintext_length + kTagSize;
  file.resize(want + 1);
  ASSIGN_OR_RETURN(size_t rest, PreadFull(fd, std::span(file).subspan(kHeaderSize), kHeaderSize));
  file.resize(kHeaderSize + rest);
  return file;
}

std::string Describe(BlobKind kind) {
  return "vTPM " + std::string(BlobKindName(kind)) + " state '" + std::string(StateFileName(kind)) +
         "'";
}

}  // namespace

std::string_view StateFileName(BlobKind kind) {
  return kind == BlobKind::kVolatile ? kVolatileStateFile : kPermanentStateFile;
}

SealedStateStore::SealedStateStore(int dirfd, const Key& key, VmId vm_id)
    : dirfd_(dirfd), key_(key), vm_id_(vm_id) {}

std::optional<uint64_t>& SealedStateStore::LastGeneration(BlobKind kind) {
  return kind == BlobKind::kVolatile ? last_volatile_ : last_permanent_;
}

Result<std::optional<SealedStateStore::Loaded>> SealedStateStore::Load(BlobKind kind,
                                                                       const LoadOptions& options) {
  const std::string name(StateFileName(kind));
  UniqueFd fd(openat(dirfd_, name.c_str(), kStateReadFlags));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<Loaded>();
    if (errno == ELOOP) {
      return Error(ErrorKind::kProtocol, Describe(kind) + ": is a symbolic link; refused");
    }
    return ErrnoError(Describe(kind) + ": open");
  }
  // Within one store's lifetime the state never goes backwards: a file older than what this
  // store loaded or wrote was put there by someone else.
  std::optional<uint64_t>& last = LastGeneration(kind);
  const Expected expected{vm_id_, kind, std::max(options.min_generation, last.value_or(0))};
  auto file = ReadSealedFile(fd.get(), expected);
  if (!file) return file.error().Wrap(Describe(kind));
  auto unsealed = Unseal(key_, expected, *file);
  if (!unsealed) return unsealed.error().Wrap(Describe(kind));
  Loaded loaded{std::move(unsealed->plaintext), unsealed->header.generation};
  last = loaded.generation;
  return std::optional<Loaded>(std::move(loaded));
}

Result<uint64_t> SealedStateStore::Write(BlobKind kind, std::span<const uint8_t> plaintext) {
  std::optional<uint64_t>& last = LastGeneration(kind);
  if (!last) {
    auto current = Load(kind);
    if (!current) {
      return current.error().Wrap(
          "not overwriting a state that fails its check (move it away to start "
          "the vTPM afresh)");
    }
    if (!*current) last = 0;
  }
  const uint64_t generation = *last + 1;
  ASSIGN_OR_RETURN(std::vector<uint8_t> sealed, Seal(key_, {vm_id_, kind, generation}, plaintext));

  const std::string name(StateFileName(kind));
  const std::string tmp = name + std::string(kTempSuffix);
  UniqueFd fd(openat(dirfd_, tmp.c_str(), kStateWriteFlags, 0600));
  if (!fd.valid() && errno == ELOOP) {
    // A symlink where our temp file goes: O_NOFOLLOW refused to write through it; drop it.
    unlinkat(dirfd_, tmp.c_str(), 0);
    fd.reset(openat(dirfd_, tmp.c_str(), kStateWriteFlags, 0600));
  }
  if (!fd.valid()) return ErrnoError(Describe(kind) + ": create " + tmp);
  auto done = [&]() -> Result<void> {
    RETURN_IF_ERROR(PwriteFull(fd.get(), sealed));
    RETURN_IF_ERROR(SyncAndClose(std::move(fd), tmp));
    if (renameat(dirfd_, tmp.c_str(), dirfd_, name.c_str()) != 0)
      return ErrnoError("rename " + tmp);
    return Ok();
  }();
  if (!done) {
    unlinkat(dirfd_, tmp.c_str(), 0);
    return done.error().Wrap(Describe(kind));
  }
  // From here the new state is in place; only its durability across power loss is at stake.
  last = generation;
  if (fsync(dirfd_) != 0) return ErrnoError(Describe(kind) + ": fsync state directory");
  return generation;
}

Result<void> SealedStateStore::Remove(BlobKind kind) {
  const std::string name(StateFileName(kind));
  if (unlinkat(dirfd_, name.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoError(Describe(kind) + ": remove");
  }
  if (fsync(dirfd_) != 0) return ErrnoError(Describe(kind) + ": fsync state directory");
  return Ok();
}

Result<Key> ReadKeyFile(int dirfd, std::string_view name) {
  RETURN_IF_ERROR(ValidateName(name));
  const std::string n(name);
  const std::string what = "vTPM key file '" + n + "'";
  UniqueFd fd(openat(dirfd, n.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ENOENT) return Error(ErrorKind::kNotFound, what + ": does not exist", ENOENT);
    if (errno == ELOOP)
      return Error(ErrorKind::kInvalidArgument, what + ": is a symbolic link; refused");
    return ErrnoError(what + ": open");
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError(what + ": stat");
  if (!S_ISREG(st.st_mode)) return InvalidArgument(what + ": not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return InvalidArgument(what + ": group or others may access it (mode " + mode +
                           "); chmod 600 it");
  }
  if (st.st_size != static_cast<off_t>(kKeySize)) {
    return InvalidArgument(what + ": " + std::to_string(st.st_size) + " bytes, a key is exactly " +
                           std::to_string(kKeySize));
  }
  std::array<uint8_t, kKeySize + 1> buf;
  auto got = PreadFull(fd.get(), buf, 0);
  if (!got || *got != kKeySize) {
    OPENSSL_cleanse(buf.data(), buf.size());
    return got ? InvalidArgument(what + ": changed size while read") : got.error().Wrap(what);
  }
  Key key(std::span<const uint8_t, kKeySize>(buf.data(), kKeySize));
  OPENSSL_cleanse(buf.data(), buf.size());
  return key;
}

Result<Key> LoadOrCreateKeyFile(int dirfd, std::string_view name) {
  auto existing = ReadKeyFile(dirfd, name);
  if (existing || existing.error().kind() != ErrorKind::kNotFound) return existing;

  ASSIGN_OR_RETURN(Key key, Key::Random());
  std::array<uint8_t, 8> suffix;
  if (RAND_bytes(suffix.data(), static_cast<int>(suffix.size())) != 1) {
    return Error(ErrorKind::kInternal, "RAND_bytes failed (key file temp name)");
  }
  std::string tmp = std::string(name) + ".new-";
  for (uint8_t b : suffix) tmp += "0123456789abcdef"[b & 0xf];
  const std::string n(name);
  const std::string what = "vTPM key file '" + n + "'";
  UniqueFd fd(
      openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return ErrnoError(what + ": create " + tmp);
  auto linked = [&]() -> Result<void> {
    RETURN_IF_ERROR(PwriteFull(fd.get(), key.bytes()));
    RETURN_IF_ERROR(SyncAndClose(std::move(fd), tmp));
    // linkat never replaces: O_EXCL semantics for the final name, with the content complete.
    if (linkat(dirfd, tmp.c_str(), dirfd, n.c_str(), 0) != 0) return ErrnoError("link " + tmp);
    return Ok();
  }();
  unlinkat(dirfd, tmp.c_str(), 0);
  if (!linked) {
    if (linked.error().sys_errno() == EEXIST) return ReadKeyFile(dirfd, name);  // lost a race
    return linked.error().Wrap(what);
  }
  if (fsync(dirfd) != 0) return ErrnoError(what + ": fsync directory");
  return key;
}

Result<void> WarmUpCrypto() {
  if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1) {
    return Error(ErrorKind::kInternal, "OpenSSL initialisation failed");
  }
  ASSIGN_OR_RETURN(Key key, Key::Random());
  const VmId id = VmId::FromName("warm-up");
  const uint8_t probe[1] = {0};
  ASSIGN_OR_RETURN(std::vector<uint8_t> sealed, Seal(key, {id, BlobKind::kPermanent, 1}, probe));
  ASSIGN_OR_RETURN(Unsealed back, Unseal(key, {id, BlobKind::kPermanent, 0}, sealed));
  if (back.plaintext.size() != 1) return Error(ErrorKind::kInternal, "AES-GCM self-check failed");
  return Ok();
}

}  // namespace vmm::vtpm
