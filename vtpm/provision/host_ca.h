// The per-host vTPM CA (ARCHITECTURE.md §6): an ECDSA P-256 key and a self-signed certificate
// that issue every EK certificate of this host's VMs. Tenants pin its certificate.
//
//   ASSIGN_OR_RETURN(HostCa ca, EnsureHostCa("/var/lib/vmm/vtpm-ca"));
//   std::string pin = *ca.CertPem();   // what a tenant's verifier is given
//
// Files in the CA directory: kHostCaKeyFile (PKCS#8 PEM, mode 0600) and kHostCaCertFile
// (PEM, 0644). First use creates both: each is written to a randomly named temp file,
// fsync'd, and linkat'd to its name (never replacing an existing file), then the directory
// is fsync'd. Later uses load them and refuse: a key file that is not a regular file or
// that group or others may access, a key without a certificate (or the reverse), a
// certificate whose key is not the key file's, or one that is not a self-signed CA.
//
// Ownership: HostCa owns its key and certificate (the key never leaves the object except
// to sign). EnsureHostCa borrows `ca_dirfd` (O_RDONLY|O_DIRECTORY).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>
#include <string_view>

#include "base/result.h"
#include "vtpm/provision/ossl.h"

namespace vmm::vtpm {

inline constexpr std::string_view kHostCaKeyFile = "vtpm-ca.key";
inline constexpr std::string_view kHostCaCertFile = "vtpm-ca.crt";

class HostCa {
 public:
  HostCa(EvpPkeyPtr key, X509Ptr cert) : key_(std::move(key)), cert_(std::move(cert)) {}

  EVP_PKEY* key() const { return key_.get(); }
  X509* cert() const { return cert_.get(); }
  Result<std::string> CertPem() const { return CertToPem(cert_.get()); }

 private:
  EvpPkeyPtr key_;
  X509Ptr cert_;
};

// Creates the CA on first use ("CN=vmm vTPM CA <hostname>", 10 years, random serial),
// loads and checks it afterwards.
Result<HostCa> EnsureHostCa(int ca_dirfd);
// The same for a directory path; creates the directory (0700) if it does not exist.
Result<HostCa> EnsureHostCa(const std::string& ca_dir);

}  // namespace vmm::vtpm
