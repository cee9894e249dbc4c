// Helpers for the audit trail's tests: an operator's key pair on disk, logs as lines, events.
//
//   TempDir dir("vmm-audit");  KeyFiles keys = MakeKeyFiles(dir);
//   std::vector<std::string> lines = SplitLines(dir.ReadText("audit.jsonl"));
#pragma once

#include <openssl/pem.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/openssl_ptr.h"
#include "tests/unit/common/temp_dir.h"
#include "vmm/manager/audit/audit_trail.h"

namespace vmm::audit::testing {

struct KeyFiles {
  std::string private_pem;  // mode 0600
  std::string public_pem;
};

inline KeyFiles MakeKeyFiles(const testing_util::TempDir& dir, const std::string& name = "op") {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  EXPECT_TRUE(key);
  KeyFiles files{dir.File(name + ".key"), dir.File(name + ".pub.pem")};
  BioPtr priv(BIO_new_file(files.private_pem.c_str(), "w"));
  EXPECT_EQ(PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr),
            1);
  priv.reset();
  chmod(files.private_pem.c_str(), 0600);
  BioPtr pub(BIO_new_file(files.public_pem.c_str(), "w"));
  EXPECT_EQ(PEM_write_bio_PUBKEY(pub.get(), key.get()), 1);
  return files;
}

// Lines without their '\n'; a last line without one is kept as it is.
inline std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

inline std::string JoinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  return text;
}

inline Event SampleEvent(const std::string& action, int n = 0) {
  Event e;
  e.action = action;
  e.who = {1000, 1000, 4242, "unconfined_u:unconfined_r:unconfined_t:s0"};
  e.vm_uuid = "6f1c9a3e-2b4d-4e8f-9a1b-3c5d7e9f1a2b";
  e.vm_name = "web-" + std::to_string(n);
  e.details = {{"kernel_sha256", std::string(64, 'a')}, {"reason", "api"}};
  return e;
}

}  // namespace vmm::audit::testing
