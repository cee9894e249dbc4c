// The vTPM's persistent state on disk: sealed (sealed_format.h), one file per blob kind in
// the VM's state directory, replaced atomically.
//
//   SealedStateStore store(state_dir_fd, key, VmId::FromName(vm_name));
//   ASSIGN_OR_RETURN(std::optional<SealedStateStore::Loaded> st, store.Load(BlobKind::kPermanent));
//
// Ownership: the store borrows `dirfd` (the caller keeps it open for the store's lifetime;
// it must be an O_RDONLY|O_DIRECTORY fd, not O_PATH, so it can be fsync'd) and holds its own
// copy of the key, cleansed when the store is destroyed. Loaded plaintext is a SecretBytes
// the caller owns.
//
// Syscalls, so the store runs inside the vtpm role's seccomp policy (sandbox/roles.cc Vtpm):
// openat(dirfd) with exactly kStateReadFlags or kStateWriteFlags, pread64/pwrite64, fsync,
// renameat and unlinkat within dirfd, close. No fstat, no lseek: size limits are enforced by
// reading the fixed header first and never more than its (bounded) length plus one byte.
// Randomness comes from OpenSSL's RAND_bytes (see the note on WarmUpCrypto below).
//
// Writes: seal in memory, write "<name>.tmp" (0600), fsync it, renameat over "<name>",
// fsync the directory. A crash at any moment leaves either the old or the new complete
// file under <name>; a temp file is never read as state.
//
// Loads: a missing file is std::nullopt (first boot). Anything else that is not a complete,
// authentic state of this VM and this kind is an Error naming the reason and the file;
// nothing is ever reset or deleted on a failed check.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "vtpm/state/sealed_format.h"

namespace vmm::vtpm {

// Must match sandbox/roles.h kVtpmStateReadFlags / kVtpmStateWriteFlags (a test checks).
inline constexpr int kStateReadFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
inline constexpr int kStateWriteFlags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW;

inline constexpr std::string_view kPermanentStateFile = "tpm-permanent.state";
inline constexpr std::string_view kVolatileStateFile = "tpm-volatile.state";
inline constexpr std::string_view kTempSuffix = ".tmp";

std::string_view StateFileName(BlobKind kind);

class SealedStateStore {
 public:
  SealedStateStore(int dirfd, const Key& key, VmId vm_id);

  struct Loaded {
    SecretBytes plaintext;
    uint64_t generation = 0;
  };
  struct LoadOptions {
    // > 0: refuse a state older than this (rollback), e.g. a generation the caller
    // recorded somewhere the state directory's owner cannot rewrite.
    uint64_t min_generation = 0;
  };

  // std::nullopt when the file does not exist. Remembers the generation for Write, and
  // refuses a file older than one this store has already loaded or written (rollback).
  Result<std::optional<Loaded>> Load(BlobKind kind, const LoadOptions& options);
  Result<std::optional<Loaded>> Load(BlobKind kind) { return Load(kind, LoadOptions{}); }

  // Seals and atomically replaces the state of `kind`; returns the generation written
  // (one more than the last one loaded or written). If this store has not seen the file
  // yet it checks it first, and refuses to overwrite a state that fails its check.
  Result<uint64_t> Write(BlobKind kind, std::span<const uint8_t> plaintext);

  // Deletes the state of `kind` (libtpms volatile state is used once). The generation
  // counter is kept, so a later Write still goes forward. Missing is not an error.
  Result<void> Remove(BlobKind kind);

 private:
  std::optional<uint64_t>& LastGeneration(BlobKind kind);

  int dirfd_;
  Key key_;
  VmId vm_id_;
  std::optional<uint64_t> last_permanent_;
  std::optional<uint64_t> last_volatile_;
};

// The per-VM key file (kKeySize raw bytes, mode 0600). Meant to run before confinement,
// in the process that sets up the VM: creation needs O_EXCL and linkat, reading checks
// fstat, none of which the vtpm role's policy grants.
//
// ReadKeyFile: an ErrorKind::kNotFound Error if missing; refuses a symlink, a non-regular
// file, a size other than kKeySize, or a file group or others may access.
Result<Key> ReadKeyFile(int dirfd, std::string_view name);
// Reads the key, or creates it from RAND_bytes if it does not exist: written to a
// randomly named temp file (O_CREAT|O_EXCL, 0600), fsync'd, then linkat'd to `name`
// (which never replaces an existing file: if another process won the race its key is read),
// then the directory is fsync'd. A crash never leaves a short key under `name`.
Result<Key> LoadOrCreateKeyFile(int dirfd, std::string_view name);

// Loads OpenSSL's AES-GCM and SHA-256 implementations and seeds its DRBG, so that after
// confinement no config file is opened. Call once before entering the sandbox. Note that
// OpenSSL's DRBG reseeds from getrandom(2) from time to time, which the vtpm role must allow.
Result<void> WarmUpCrypto();

}  // namespace vmm::vtpm
