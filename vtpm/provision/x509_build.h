// Small steps shared by the CA and EK certificate builders (RFC 5280 profile pieces).
//
//   RETURN_IF_ERROR(SetV3SerialAndValidity(cert, 3653, nullptr));
//   RETURN_IF_ERROR(AddExtension(cert, issuer, NID_key_usage, "critical,keyCertSign"));
#pragma once

#include <openssl/x509.h>

#include <memory>
#include <string>

#include "base/openssl_ptr.h"
#include "base/result.h"

namespace vmm::vtpm {

// Version 3, a random positive 127-bit serial (RFC 5280 4.1.2.2: at most 20 octets),
// notBefore 5 minutes ago (clock skew), notAfter `days` from now but never after
// `not_after_cap`'s notAfter (a certificate outliving its issuer cannot verify).
Result<void> SetV3SerialAndValidity(X509* cert, long days, X509* not_after_cap);

// "CN=<cn>" (UTF-8).
Result<X509NamePtr> CommonName(const std::string& cn);

// An extension from OpenSSL's config syntax ("critical,CA:TRUE", "keyid:always"), with
// `issuer` as the issuer certificate (the certificate itself when self-signed).
Result<void> AddExtension(X509* cert, X509* issuer, int nid, const std::string& value);

}  // namespace vmm::vtpm
