// Times TPM commands through ESAPI (tpm2-tss) against any TPM a TCTI reaches, so vmm-vtpm
// and swtpm can be driven by the very same client code, TCTI and TSS library.
//
//   vtpm_bench --tcti swtpm:host=127.0.0.1,port=2321 --name vmm-vtpm [--iterations 200]
//              [--warmup 10]
//   -> vtpm_bench: name=vmm-vtpm n=200 extend_p50_us=... extend_p99_us=...
//      getrandom_p50_us=... getrandom_p99_us=... quote_p50_us=... quote_p99_us=...
//
// Setup (not timed): TPM2_Startup(CLEAR) (TPM_RC_INITIALIZE, already started, is fine), then
// TPM2_CreatePrimary of a restricted ECC P-256 ECDSA/SHA-256 signing key (the AK) in the
// owner hierarchy, empty owner auth. Then, per operation, --warmup untimed calls and
// --iterations timed ones, each timed around the one Esys_* call (marshalling, the TCTI
// round trip, the TPM's work, unmarshalling):
//   extend:    TPM2_PCR_Extend(PCR 16, one SHA-256 digest), password session (empty auth)
//   getrandom: TPM2_GetRandom(32)
//   quote:     TPM2_Quote(AK, SHA-256 PCRs 0-7 and 16, 16-byte qualifying data)
//
// ESAPI's synchronous calls wait for the answer for ever; a TPM that stops answering ends
// the run within --stall seconds (default 15) with "no progress ... the peer stopped
// answering" and exit status 1 (bench/common/watchdog.h), for bench/vtpm/run.sh to report.
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/cli.h"
#include "bench/common/watchdog.h"

namespace {

struct Options {
  std::string tcti;
  std::string name = "tpm";
  int iterations = 200;
  int warmup = 10;
  int stall_s = 15;
};

bool Check(TSS2_RC rc, const char* what) {
  if (rc == TSS2_RC_SUCCESS) return true;
  std::fprintf(stderr, "vtpm_bench: %s failed: 0x%08x\n", what, static_cast<unsigned>(rc));
  return false;
}

struct Figures {
  double p50_us = 0, p99_us = 0;
};

Figures Summarize(std::vector<double> lat) {
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(lat.size()));
    return lat[std::min(i, lat.size() - 1)];
  };
  return {pct(0.50), pct(0.99)};
}

// Runs op warmup times untimed, then iterations times timed; false if any call fails.
bool Time(const Options& o, const char* what, const std::function<TSS2_RC()>& op,
          bench::Watchdog& dog, Figures* out) {
  for (int i = 0; i < o.warmup; ++i) {
    if (!Check(op(), what)) return false;
    dog.Progress(what);
  }
  std::vector<double> lat;
  lat.reserve(static_cast<size_t>(o.iterations));
  for (int i = 0; i < o.iterations; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    TSS2_RC rc = op();
    auto t1 = std::chrono::steady_clock::now();
    if (!Check(rc, what)) return false;
    lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    dog.Progress(what);
  }
  *out = Summarize(std::move(lat));
  return true;
}

TPM2B_PUBLIC AkTemplate() {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_ECC;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                  TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                  TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  auto& ecc = t.publicArea.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_NULL;
  ecc.scheme.scheme = TPM2_ALG_ECDSA;
  ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

int Run(const Options& o) {
  bench::Watchdog dog("vtpm_bench: " + o.name, o.stall_s);
  dog.Progress("TCTI start-up");
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  if (!Check(Tss2_TctiLdr_Initialize(o.tcti.c_str(), &tcti), "Tss2_TctiLdr_Initialize")) {
    return 1;
  }
  ESYS_CONTEXT* ctx = nullptr;
  if (!Check(Esys_Initialize(&ctx, tcti, nullptr), "Esys_Initialize")) {
    Tss2_TctiLdr_Finalize(&tcti);
    return 1;
  }
  int status = 1;
  ESYS_TR ak = ESYS_TR_NONE;
  [&] {
    dog.Progress("TPM2_Startup");
    TSS2_RC rc = Esys_Startup(ctx, TPM2_SU_CLEAR);
    if (rc != TPM2_RC_INITIALIZE && !Check(rc, "TPM2_Startup")) return;

    // The AK.
    dog.Progress("TPM2_CreatePrimary (AK)");
    TPM2B_SENSITIVE_CREATE in_sensitive{};
    TPM2B_PUBLIC in_public = AkTemplate();
    TPM2B_DATA outside_info{};
    TPML_PCR_SELECTION creation_pcr{};
    if (!Check(Esys_CreatePrimary(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &in_sensitive, &in_public, &outside_info,
                                  &creation_pcr, &ak, nullptr, nullptr, nullptr, nullptr),
               "TPM2_CreatePrimary (AK)")) {
      return;
    }

    Figures extend, getrandom, quote;

    TPML_DIGEST_VALUES digests{};
    digests.count = 1;
    digests.digests[0].hashAlg = TPM2_ALG_SHA256;
    uint8_t counter = 0;
    auto do_extend = [&] {
      std::memset(digests.digests[0].digest.sha256, ++counter, TPM2_SHA256_DIGEST_SIZE);
      return Esys_PCR_Extend(ctx, ESYS_TR_PCR16, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                             &digests);
    };
    if (!Time(o, "TPM2_PCR_Extend", do_extend, dog, &extend)) return;

    auto do_getrandom = [&] {
      TPM2B_DIGEST* bytes = nullptr;
      TSS2_RC r = Esys_GetRandom(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 32, &bytes);
      if (r == TSS2_RC_SUCCESS && bytes->size != 32) r = TSS2_ESYS_RC_MALFORMED_RESPONSE;
      Esys_Free(bytes);
      return r;
    };
    if (!Time(o, "TPM2_GetRandom", do_getrandom, dog, &getrandom)) return;

    TPM2B_DATA nonce{};
    nonce.size = 16;
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // the AK's own: ECDSA with SHA-256
    TPML_PCR_SELECTION pcrs{};
    pcrs.count = 1;
    pcrs.pcrSelections[0].hash = TPM2_ALG_SHA256;
    pcrs.pcrSelections[0].sizeofSelect = 3;
    pcrs.pcrSelections[0].pcrSelect[0] = 0xff;  // PCRs 0-7
    pcrs.pcrSelections[0].pcrSelect[2] = 0x01;  // PCR 16
    uint32_t quote_no = 0;
    auto do_quote = [&] {
      ++quote_no;
      for (int i = 0; i < 16; ++i) {
        nonce.buffer[i] = static_cast<uint8_t>(quote_no >> (8 * (i % 4)));
      }
      TPM2B_ATTEST* quoted = nullptr;
      TPMT_SIGNATURE* sig = nullptr;
      TSS2_RC r = Esys_Quote(ctx, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &nonce, &scheme,
                             &pcrs, &quoted, &sig);
      if (r == TSS2_RC_SUCCESS && sig->sigAlg != TPM2_ALG_ECDSA) {
        r = TSS2_ESYS_RC_MALFORMED_RESPONSE;
      }
      Esys_Free(quoted);
      Esys_Free(sig);
      return r;
    };
    if (!Time(o, "TPM2_Quote", do_quote, dog, &quote)) return;

    std::printf(
        "vtpm_bench: name=%s n=%d extend_p50_us=%.1f extend_p99_us=%.1f "
        "getrandom_p50_us=%.1f getrandom_p99_us=%.1f quote_p50_us=%.1f quote_p99_us=%.1f\n",
        o.name.c_str(), o.iterations, extend.p50_us, extend.p99_us, getrandom.p50_us,
        getrandom.p99_us, quote.p50_us, quote.p99_us);
    std::fflush(stdout);
    status = 0;
  }();
  dog.Progress("TPM2_FlushContext");
  if (ak != ESYS_TR_NONE) Esys_FlushContext(ctx, ak);
  Esys_Finalize(&ctx);
  Tss2_TctiLdr_Finalize(&tcti);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Times TPM2_PCR_Extend, TPM2_GetRandom and TPM2_Quote through a TCTI", "vtpm_bench"};
  app.add_option("--tcti", o.tcti, "e.g. swtpm:host=127.0.0.1,port=2321")->required();
  app.add_option("--name", o.name, "the TPM's name in the output");
  app.add_option("--iterations", o.iterations, "timed calls of each operation")
      ->check(CLI::Range(1, 10000000));
  app.add_option("--warmup", o.warmup, "untimed calls first")->check(CLI::Range(0, 10000000));
  app.add_option("--stall", o.stall_s, "give up after this many seconds without progress")
      ->check(CLI::Range(0, 10000000));
  if (std::optional<int> done = vmm::ParseCommandLine(app, argc, argv, "vtpm_bench")) return *done;
  return Run(o);
}
