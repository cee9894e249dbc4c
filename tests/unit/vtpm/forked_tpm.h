// The provisioning tests' fixtures: a libtpms engine in a forked child (ForkEnginePeer, so the
// test process never initialises libtpms) with an ESYS context on it, and the host vTPM CA in
// a temp directory.
//
//   Tpm tpm;
//   HostCa ca = MustCa(dir);
//   auto ek = CreateEkAndCert(tpm.get(), ca, ...);
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <utility>

#include "tests/unit/common/temp_dir.h"
#include "vtpm/provision/host_ca.h"
#include "vtpm/tcti/esys_context.h"
#include "vtpm/tcti/tpm_peer_fake.h"

namespace vmm::vtpm {

// An engine in a child and an ESYS context on it.
struct Tpm {
  Tpm() : peer(Start()) {
    auto e = OpenEsys(peer.TakeFd());
    EXPECT_TRUE(e) << e.error().ToString();
    if (e) esys.emplace(std::move(*e));
  }
  static ForkedPeer Start() {
    auto p = ForkEnginePeer();
    EXPECT_TRUE(p) << p.error().ToString();
    return std::move(p).value();
  }
  ESYS_CONTEXT* get() const { return esys->get(); }
  ForkedPeer peer;
  std::optional<EsysContext> esys;
};

inline HostCa MustCa(const testing_util::TempDir& dir) {
  auto ca = EnsureHostCa(dir.path());
  EXPECT_TRUE(ca) << ca.error().ToString();
  return std::move(ca).value();
}

}  // namespace vmm::vtpm
