// Algorithm table and multi-bank hashing with OpenSSL EVP.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>

#include "attestation/event_log.h"
#include "attestation/internal.h"
#include "base/openssl_ptr.h"

namespace vmm::attestation {

std::optional<size_t> DigestSizeOf(uint16_t alg) {
  if (size_t size = TpmAlgDigestSize(alg); size != 0) return size;
  return std::nullopt;
}

std::string AlgName(uint16_t alg) {
  if (std::string_view known = TpmAlgKnownName(alg); !known.empty()) return std::string(known);
  char buf[16];
  std::snprintf(buf, sizeof buf, "alg_0x%04x", alg);
  return buf;
}

namespace internal {

namespace {
// Fetched once: with OpenSSL 3's EVP_sha256() and the like every EVP_DigestInit_ex fetches the
// implementation from the provider again, which costs more than hashing an event. The fetched
// objects live as long as the process. Falls back to the legacy object if the fetch fails.
struct FetchedMd {
  uint16_t alg;
  const char* name;
  const EVP_MD* (*legacy)();
};
constexpr FetchedMd kFetchedMds[] = {{kAlgSha1, "SHA1", EVP_sha1},
                                     {kAlgSha256, "SHA2-256", EVP_sha256},
                                     {kAlgSha384, "SHA2-384", EVP_sha384},
                                     {kAlgSha512, "SHA2-512", EVP_sha512}};
}  // namespace

const EVP_MD* EvpFor(uint16_t alg) {
  static const auto fetched = [] {
    std::array<const EVP_MD*, std::size(kFetchedMds)> mds{};
    for (size_t i = 0; i < mds.size(); ++i) {
      const EVP_MD* md = EVP_MD_fetch(nullptr, kFetchedMds[i].name, nullptr);
      mds[i] = md ? md : kFetchedMds[i].legacy();
    }
    return mds;
  }();
  for (size_t i = 0; i < fetched.size(); ++i) {
    if (kFetchedMds[i].alg == alg) return fetched[i];
  }
  if (alg == kAlgSm3_256) return EVP_get_digestbyname("SM3");  // absent when built without SM3
  return nullptr;
}

Result<std::vector<Digest>> HashChunks(std::span<const uint16_t> algs,
                                       std::span<const std::span<const uint8_t>> parts) {
  std::vector<EvpMdCtxPtr> ctxs;
  ctxs.reserve(algs.size());
  for (uint16_t alg : algs) {
    const EVP_MD* md = EvpFor(alg);
    if (md == nullptr) {
      return Error(ErrorKind::kUnsupported,
                   "hash algorithm " + AlgName(alg) + " is not available in this OpenSSL");
    }
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
      return Error(ErrorKind::kInternal, "EVP_DigestInit_ex failed for " + AlgName(alg));
    }
    ctxs.push_back(std::move(ctx));
  }
  // All banks see each chunk while it is in cache: one pass over the memory.
  for (std::span<const uint8_t> part : parts) {
    for (size_t off = 0; off < part.size(); off += kHashChunk) {
      size_t n = std::min(kHashChunk, part.size() - off);
      for (size_t i = 0; i < ctxs.size(); ++i) {
        if (EVP_DigestUpdate(ctxs[i].get(), part.data() + off, n) != 1) {
          return Error(ErrorKind::kInternal, "EVP_DigestUpdate failed for " + AlgName(algs[i]));
        }
      }
    }
  }
  std::vector<Digest> out;
  out.reserve(algs.size());
  for (size_t i = 0; i < ctxs.size(); ++i) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctxs[i].get(), md, &len) != 1) {
      return Error(ErrorKind::kInternal, "EVP_DigestFinal_ex failed for " + AlgName(algs[i]));
    }
    out.push_back(Digest{algs[i], std::vector<uint8_t>(md, md + len)});
  }
  return out;
}

}  // namespace internal

bool AlgSupported(uint16_t alg) { return internal::EvpFor(alg) != nullptr; }

Result<std::vector<Digest>> HashAll(std::span<const uint16_t> algs, std::span<const uint8_t> data) {
  std::span<const uint8_t> parts[] = {data};
  return internal::HashChunks(algs, parts);
}

}  // namespace vmm::attestation
