#include "vmm/manager/vtpm_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "base/hex.h"
#include "vmm/manager/vtpm_process.h"
#include "vtpm/protocol/swtpm_client.h"
#include "vtpm/provision/ak_cert.h"
#include "vtpm/provision/ak_provision.h"
#include "vtpm/provision/ek_provision.h"
#include "vtpm/provision/host_ca.h"
#include "vtpm/provision/ossl.h"
#include "vtpm/tcti/esys_context.h"

namespace vmm {
namespace {

constexpr std::chrono::milliseconds kTimeout(60000);  // RSA key generation on a loaded host

// A started vTPM at locality 0 with an ESYS context on the manager's data channel.
struct Session {
  VtpmProcess process;
  std::optional<vtpm::EsysContext> esys;
};

Result<void> CheckPersistent(const TpmConfig& tpm) {
  if (tpm.mode != TpmConfig::Mode::kPersistent) {
    return InvalidArgument("--vm: a provisioned vTPM needs persistent state: state=DIR,key=FILE");
  }
  return Ok();
}

// `path` absolute, with the longest prefix that exists resolved by realpath(3) (symlinks,
// "..") and the rest, which does not exist yet, normalised by its names: so a directory
// compares as it will be when it is created.
std::string ResolvePath(const std::string& path) {
  std::string abs = path;
  if (abs.empty() || abs[0] != '/') {
    char cwd[PATH_MAX];
    abs = std::string(getcwd(cwd, sizeof(cwd)) ? cwd : ".") + "/" + abs;
  }
  std::vector<std::string> parts;
  for (size_t pos = 0; pos < abs.size();) {
    size_t slash = abs.find('/', pos);
    if (slash == std::string::npos) slash = abs.size();
    std::string part = abs.substr(pos, slash - pos);
    if (!part.empty() && part != ".") parts.push_back(part);
    pos = slash + 1;
  }
  for (size_t n = parts.size() + 1; n-- > 0;) {
    std::string prefix;
    for (size_t i = 0; i < n; ++i) prefix += "/" + parts[i];
    char* real = realpath(prefix.empty() ? "/" : prefix.c_str(), nullptr);
    if (real == nullptr) continue;
    std::string out = std::strcmp(real, "/") == 0 ? "" : real;
    std::free(real);
    for (size_t i = n; i < parts.size(); ++i) {
      if (parts[i] != "..") {
        out += "/" + parts[i];
      } else if (size_t up = out.rfind('/'); up != std::string::npos) {
        out.resize(up);
      }
    }
    return out.empty() ? "/" : out;
  }
  return abs;
}

// The CA key must not lie beneath the directory the vTPM process's Landlock rule opens.
Result<void> CheckCaOutsideStateDir(const std::string& ca_dir, const std::string& state_dir) {
  const std::string ca = ResolvePath(ca_dir), state = ResolvePath(state_dir);
  if (ca == state || state == "/" || ca.rfind(state + "/", 0) == 0) {
    return InvalidArgument("--ca '" + ca_dir + "' is inside the VM's state directory '" +
                           state_dir +
                           "', where the vTPM process may open files: keep the CA "
                           "outside every VM's directory");
  }
  return Ok();
}

Result<Session> Open(const TpmConfig& tpm) {
  RETURN_IF_ERROR(CheckPersistent(tpm));
  ASSIGN_OR_RETURN(VtpmProcess p, StartVtpmProcess(tpm));
  auto fail = [&p](const Error& e) -> Error {
    std::string how = StopVtpmProcess(p, 0);
    return how.empty() ? e : e.Wrap(how.substr(0, how.size() - 1));
  };
  vtpm::SwtpmClient control(p.control.get(), kTimeout);
  if (auto r = control.Init(); !r) return fail(r.error().Wrap("vTPM"));
  const uint8_t startup[] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0x00, 0x00};
  auto rsp = TpmCommand(p, startup);
  if (!rsp) return fail(rsp.error().Wrap("TPM2_Startup"));
  UniqueFd data(fcntl(p.data.get(), F_DUPFD_CLOEXEC, 0));
  if (!data.valid()) return fail(ErrnoError("dup"));
  auto esys = vtpm::OpenEsys(std::move(data));
  if (!esys) return fail(esys.error());
  return Session{std::move(p), std::move(esys).value()};
}

Result<void> Close(Session& s) {
  s.esys.reset();
  std::string how = StopVtpmProcess(s.process);
  if (!how.empty()) return Error(ErrorKind::kSystem, how.substr(0, how.size() - 1));
  return Ok();
}

std::string FileKind(vtpm::EkKind kind) {
  return kind == vtpm::EkKind::kRsa2048 ? "rsa2048" : "eccp256";
}

Result<void> WriteFile(const std::string& path, const std::string& text) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Error(ErrorKind::kInvalidArgument, "--out: '" + path + "'", errno);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoError("writing '" + path + "'");
  }
  return Ok();
}

// The AK recreated, its certificate read from NV and checked against the CA and the key;
// printed (PEM) or written as ak.pub.pem and ak.crt.pem. A vTPM provisioned before AKs
// existed has none: reported, not an error.
Result<void> ExportAk(ESYS_CONTEXT* esys, const EkExportRequest& request, const std::string& ca_pem,
                      const std::string& ca_path, std::string* out, std::string* report) {
  auto der = vtpm::ReadAkCertificate(esys);
  if (!der && der.error().kind() == ErrorKind::kNotFound) {
    *report += "vtpm: no AK certificate at NV index " + Hex(vtpm::kAkCertNvIndex, 8) +
               " (vmm vtpm provision --force adds one)\n";
    return Ok();
  }
  if (!der) return der.error().Wrap("AK certificate");
  ASSIGN_OR_RETURN(vtpm::ProvisionedAk ak, vtpm::ReadAkPublic(esys));
  if (auto v = vtpm::VerifyAkCertificate(*der, ca_pem, ak.public_pem); !v) {
    return v.error().Wrap("AK certificate does not verify against " + ca_path);
  }
  ASSIGN_OR_RETURN(vtpm::X509Ptr cert, vtpm::CertFromDer(*der));
  ASSIGN_OR_RETURN(std::string cert_pem, vtpm::CertToPem(cert.get()));
  *report += "vtpm: AK " + HexBytes(ak.name) + ": certificate (NV " + Hex(vtpm::kAkCertNvIndex, 8) +
             ") verifies against " + ca_path + " and matches the AK\n";
  if (request.out_dir.empty()) {
    *out += ak.public_pem + cert_pem;
    return Ok();
  }
  const std::string base = request.out_dir + "/ak";
  RETURN_IF_ERROR(WriteFile(base + ".pub.pem", ak.public_pem));
  RETURN_IF_ERROR(WriteFile(base + ".crt.pem", cert_pem));
  *report += "vtpm: wrote " + base + ".pub.pem and " + base + ".crt.pem\n";
  return Ok();
}

}  // namespace

Result<std::string> ProvisionVtpm(const ProvisionRequest& request) {
  // Every input first: a refused request leaves nothing behind (no CA, state dir or key).
  RETURN_IF_ERROR(CheckPersistent(request.tpm));
  RETURN_IF_ERROR(CheckTpmPaths(request.tpm, "--vm"));
  RETURN_IF_ERROR(CheckCaOutsideStateDir(request.ca_dir, request.tpm.state_dir));
  ASSIGN_OR_RETURN(vtpm::HostCa ca, vtpm::EnsureHostCa(request.ca_dir));
  ASSIGN_OR_RETURN(Session s, Open(request.tpm));
  vtpm::ProvisionOptions options;
  options.vm_id = request.vm_id;
  options.force = request.force;
  // The EKs, then the AK bound to the RSA EK; every "already there" is found before anything
  // changes (ProvisionEks checks its own indices first).
  Result<std::vector<vtpm::ProvisionedEk>> eks = Error(ErrorKind::kInternal, "not run");
  Result<vtpm::ProvisionedAk> ak = Error(ErrorKind::kInternal, "not run");
  auto ak_there = vtpm::AkProvisioned(s.esys->get());
  if (!ak_there) {
    eks = ak_there.error();
  } else if (*ak_there && !request.force) {
    eks = InvalidArgument("vTPM is already provisioned: NV index " + Hex(vtpm::kAkCertNvIndex, 8) +
                          " (AK certificate) exists; use --force to replace the certificates");
  } else {
    eks = vtpm::ProvisionEks(s.esys->get(), ca, options);
    if (eks) ak = vtpm::ProvisionAk(s.esys->get(), ca, options);
  }
  auto closed = Close(s);
  if (!eks) return eks.error();
  if (!ak) return ak.error().Wrap("the attestation key");
  RETURN_IF_ERROR(closed);
  std::string report;
  for (const vtpm::ProvisionedEk& ek : *eks) {
    report += std::string("vtpm: ") + vtpm::EkKindName(ek.kind) + " EK certified, certificate (" +
              std::to_string(ek.cert_der.size()) + " bytes DER) at NV index " +
              Hex(ek.nv_index, 8) + "\n";
  }
  report += "vtpm: AK (ECC P-256, restricted signing, endorsement primary) " + HexBytes(ak->name) +
            " bound to the RSA 2048 EK (TPM2_ActivateCredential recovered the CA's credential), "
            "certified, certificate (" +
            std::to_string(ak->cert_der.size()) + " bytes DER) at NV index " +
            Hex(ak->nv_index, 8) + "\n";
  report += "vtpm: signed by the host's vTPM CA " + request.ca_dir + "/vtpm-ca.crt\n";
  return report;
}

Result<std::string> ExportEk(const EkExportRequest& request, std::string* report) {
  RETURN_IF_ERROR(CheckPersistent(request.tpm));
  RETURN_IF_ERROR(CheckTpmPaths(request.tpm, "--vm"));
  struct stat st {};
  std::string ca_path = request.ca_dir + "/vtpm-ca.crt";
  if (stat(ca_path.c_str(), &st) != 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "--ca: no vTPM CA at '" + ca_path + "' (vmm vtpm provision creates it)", errno);
  }
  ASSIGN_OR_RETURN(vtpm::HostCa ca, vtpm::EnsureHostCa(request.ca_dir));
  ASSIGN_OR_RETURN(std::string ca_pem, ca.CertPem());
  ASSIGN_OR_RETURN(Session s, Open(request.tpm));
  std::string out;
  Result<void> status = Ok();
  for (vtpm::EkKind kind : {vtpm::EkKind::kRsa2048, vtpm::EkKind::kEccP256}) {
    auto der = vtpm::ReadEkCertificate(s.esys->get(), kind);
    if (!der) {
      status = der.error().Wrap(std::string(vtpm::EkKindName(kind)) + " EK certificate");
      break;
    }
    auto pub = vtpm::ReadEkPublic(s.esys->get(), kind);
    if (!pub) {
      status = pub.error().Wrap(std::string(vtpm::EkKindName(kind)) + " EK");
      break;
    }
    if (auto v = vtpm::VerifyEkCertificate(*der, ca_pem, *pub); !v) {
      status = v.error().Wrap(std::string(vtpm::EkKindName(kind)) +
                              " EK certificate does not verify against " + ca_path);
      break;
    }
    auto cert = vtpm::CertFromDer(*der);
    if (!cert) {
      status = cert.error();
      break;
    }
    auto cert_pem = vtpm::CertToPem(cert->get());
    if (!cert_pem) {
      status = cert_pem.error();
      break;
    }
    *report += std::string("vtpm: ") + vtpm::EkKindName(kind) + " EK certificate (NV " +
               Hex(vtpm::EkCertNvIndex(kind), 8) + ") verifies against " + ca_path +
               " and matches the EK\n";
    if (request.out_dir.empty()) {
      out += *pub + *cert_pem;
      continue;
    }
    std::string base = request.out_dir + "/ek-" + FileKind(kind);
    if (auto w = WriteFile(base + ".pub.pem", *pub); !w) {
      status = w.error();
      break;
    }
    if (auto w = WriteFile(base + ".crt.pem", *cert_pem); !w) {
      status = w.error();
      break;
    }
    *report += "vtpm: wrote " + base + ".pub.pem and " + base + ".crt.pem\n";
  }
  if (status) status = ExportAk(s.esys->get(), request, ca_pem, ca_path, &out, report);
  auto closed = Close(s);
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(closed);
  return out;
}

}  // namespace vmm
