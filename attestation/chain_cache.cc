#include "attestation/chain_cache.h"

#include <openssl/evp.h>

#include <memory>

#include "attestation/internal.h"

namespace vmm::attestation {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};

// Each field with its length first, so that no two different inputs hash the same bytes.
void Field(EVP_MD_CTX* ctx, std::span<const uint8_t> bytes) {
  uint64_t n = bytes.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (56 - 8 * i));
  EVP_DigestUpdate(ctx, len, sizeof(len));
  EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

ChainCache::Key ChainCache::KeyOf(std::string_view ca_pem, const Evidence& e) {
  Key key{};
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  unsigned len = 0;
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), internal::EvpFor(kAlgSha256), nullptr) == 1;
  if (ok) {
    Field(ctx.get(), Bytes(ca_pem));
    Field(ctx.get(), Bytes(std::to_string(e.ca_chain_pem.size())));
    for (const std::string& pem : e.ca_chain_pem) Field(ctx.get(), Bytes(pem));
    Field(ctx.get(), e.ak_public);
    Field(ctx.get(), Bytes(e.ak_certificate_pem));
    Field(ctx.get(), Bytes(e.ek_certificate_pem));
    ok = EVP_DigestFinal_ex(ctx.get(), key.data(), &len) == 1 && len == key.size();
  }
  // A key of zeros when hashing failed: Verify neither finds nor stores it.
  if (!ok) key.fill(0);
  return key;
}

std::shared_ptr<const ChainCache::Entry> ChainCache::Find(const Key& key, time_t at) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    ++misses_;
    return nullptr;
  }
  if (!(it->second->not_before < at && at < it->second->not_after)) {
    entries_.erase(it);
    ++misses_;
    return nullptr;
  }
  ++hits_;
  return it->second;
}

void ChainCache::Store(const Key& key, Entry entry) {
  std::lock_guard lock(mu_);
  if (max_entries_ == 0) return;
  if (entries_.size() >= max_entries_ && entries_.count(key) == 0) {
    auto first = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second->not_after < first->second->not_after) first = it;
    }
    entries_.erase(first);
  }
  entries_[key] = std::make_shared<const Entry>(std::move(entry));
}

size_t ChainCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

uint64_t ChainCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

uint64_t ChainCache::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}

}  // namespace vmm::attestation
