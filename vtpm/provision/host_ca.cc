#include "vtpm/provision/host_ca.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>

#include "base/unique_fd.h"
#include "vtpm/provision/x509_build.h"

namespace vmm::vtpm {

namespace {

constexpr size_t kMaxPemFile = 64 * 1024;
constexpr long kCaValidityDays = 3653;  // 10 years, leap days included

// A string that is wiped when it goes away (the CA key's PEM).
struct SecretString {
  std::string s;
  ~SecretString() { OPENSSL_cleanse(s.data(), s.size()); }
};

// nullopt if the file does not exist. `secret`: refuse group/other access.
Result<std::optional<std::string>> ReadPemFile(int dirfd, std::string_view name, bool secret) {
  std::string n(name);
  UniqueFd fd(openat(dirfd, n.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<std::string>();
    return ErrnoError("opening vTPM CA file " + n);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError("fstat " + n);
  if (!S_ISREG(st.st_mode)) return InvalidArgument("vTPM CA file " + n + " is not a regular file");
  if (secret && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    return InvalidArgument("vTPM CA key " + n + " has mode " + mode +
                           ": group or others may access it; chmod 600 it (and consider it "
                           "compromised if others could read it)");
  }
  if (st.st_size <= 0 || size_t(st.st_size) > kMaxPemFile) {
    return InvalidArgument("vTPM CA file " + n + " has an implausible size");
  }
  std::string data(size_t(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    ssize_t r = read(fd.get(), data.data() + done, data.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError("reading " + n);
    if (r == 0) return InvalidArgument("vTPM CA file " + n + " shrank while being read");
    done += size_t(r);
  }
  return std::optional<std::string>(std::move(data));
}

// Writes a new file under a random temp name, fsyncs it and links it to `name`. false if
// `name` already exists (it is left alone). The caller fsyncs the directory.
Result<bool> LinkNewFile(int dirfd, std::string_view name, std::string_view data, mode_t mode) {
  unsigned char rnd[8];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return OpenSslError("RAND_bytes");
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".tmp-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
                rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  std::string tmp = std::string(name) + suffix;
  UniqueFd fd(
      openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd.valid()) return ErrnoError("creating " + tmp);
  auto fail = [&](const std::string& what) -> Error {
    Error e = ErrnoError(what);
    unlinkat(dirfd, tmp.c_str(), 0);
    return e;
  };
  // The umask may have narrowed `mode`; widening the certificate to 0644 is intended.
  if (fchmod(fd.get(), mode) != 0) return fail("fchmod " + tmp);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd.get(), data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return fail("writing " + tmp);
    done += size_t(w);
  }
  if (fsync(fd.get()) != 0) return fail("fsync " + tmp);
  fd.reset();
  std::string target(name);
  int linked = linkat(dirfd, tmp.c_str(), dirfd, target.c_str(), 0);
  int link_errno = errno;
  unlinkat(dirfd, tmp.c_str(), 0);
  if (linked != 0 && link_errno == EEXIST) return false;
  if (linked != 0) return Error(ErrorKind::kSystem, "linking " + target, link_errno);
  return true;
}

Result<std::string> Hostname() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return ErrnoError("gethostname");
  return std::string(host);
}

Result<HostCa> CreateCa() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpenSslError("generating the vTPM CA key (ECDSA P-256)");
  ASSIGN_OR_RETURN(std::string host, Hostname());
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  RETURN_IF_ERROR(SetV3SerialAndValidity(cert.get(), kCaValidityDays, nullptr));
  ASSIGN_OR_RETURN(X509NamePtr name, CommonName("vmm vTPM CA " + host));
  if (X509_set_subject_name(cert.get(), name.get()) != 1 ||
      X509_set_issuer_name(cert.get(), name.get()) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    return OpenSslError("filling the vTPM CA certificate");
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return OpenSslError("self-signing the vTPM CA certificate");
  }
  return HostCa(std::move(key), std::move(cert));
}

Result<void> CheckCa(const HostCa& ca) {
  if (X509_check_private_key(ca.cert(), ca.key()) != 1) {
    return InvalidArgument(std::string("vTPM CA certificate ") + std::string(kHostCaCertFile) +
                           " does not belong to the key " + std::string(kHostCaKeyFile));
  }
  if (X509_check_ca(ca.cert()) != 1 || X509_verify(ca.cert(), ca.key()) != 1) {
    return InvalidArgument("vTPM CA certificate is not a self-signed CA certificate");
  }
  return Ok();
}

Result<std::optional<HostCa>> LoadCa(int dirfd) {
  ASSIGN_OR_RETURN(std::optional<std::string> key_pem, ReadPemFile(dirfd, kHostCaKeyFile, true));
  SecretString secret{key_pem ? std::move(*key_pem) : std::string()};
  ASSIGN_OR_RETURN(std::optional<std::string> cert_pem, ReadPemFile(dirfd, kHostCaCertFile, false));
  if (!key_pem && !cert_pem) return std::optional<HostCa>();
  if (!key_pem || !cert_pem) {
    return InvalidArgument(std::string("vTPM CA is incomplete: ") +
                           std::string(key_pem ? kHostCaCertFile : kHostCaKeyFile) +
                           " is missing (another process may be creating the CA right now; "
                           "otherwise restore the file, or remove both to create a new CA)");
  }
  BioPtr bio(BIO_new_mem_buf(secret.s.data(), int(secret.s.size())));
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return OpenSslError("parsing the vTPM CA key " + std::string(kHostCaKeyFile));
  ASSIGN_OR_RETURN(X509Ptr cert, CertFromPem(*cert_pem));
  HostCa ca(std::move(key), std::move(cert));
  RETURN_IF_ERROR(CheckCa(ca));
  return std::optional<HostCa>(std::move(ca));
}

}  // namespace

Result<HostCa> EnsureHostCa(int ca_dirfd) {
  ASSIGN_OR_RETURN(std::optional<HostCa> loaded, LoadCa(ca_dirfd));
  if (loaded) return std::move(*loaded);

  ASSIGN_OR_RETURN(HostCa ca, CreateCa());
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), ca.key(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("encoding the vTPM CA key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  ASSIGN_OR_RETURN(std::string cert_pem, ca.CertPem());
  // The key goes first: a crash in between leaves a key without a certificate, which the
  // next call reports instead of silently creating a second CA.
  ASSIGN_OR_RETURN(bool created,
                   LinkNewFile(ca_dirfd, kHostCaKeyFile, std::string_view(data, size_t(n)), 0600));
  OPENSSL_cleanse(data, size_t(n));
  if (!created) {  // another process won the race: use its CA
    ASSIGN_OR_RETURN(std::optional<HostCa> theirs, LoadCa(ca_dirfd));
    if (!theirs) return InvalidArgument("vTPM CA key vanished while being created");
    return std::move(*theirs);
  }
  ASSIGN_OR_RETURN(bool cert_created, LinkNewFile(ca_dirfd, kHostCaCertFile, cert_pem, 0644));
  if (!cert_created) {
    return InvalidArgument(std::string("vTPM CA: ") + std::string(kHostCaCertFile) +
                           " appeared while creating a new CA key; remove both and retry");
  }
  if (fsync(ca_dirfd) != 0) return ErrnoError("fsync of the vTPM CA directory");
  return ca;
}

Result<HostCa> EnsureHostCa(const std::string& ca_dir) {
  if (mkdir(ca_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("creating the vTPM CA directory " + ca_dir);
  }
  UniqueFd dirfd(open(ca_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirfd.valid()) return ErrnoError("opening the vTPM CA directory " + ca_dir);
  auto ca = EnsureHostCa(dirfd.get());
  if (!ca) return ca.error().Wrap(ca_dir);
  return ca;
}

}  // namespace vmm::vtpm
