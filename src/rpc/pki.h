// The cluster's public-key infrastructure (OpenSSL): a CA, certificates for the master, agents
// and admins, CSRs, fingerprints, join tokens, and fetching the CA a TLS server presents.
// Keys are EC P-256, PEM-encoded. Every certificate carries its holder's name as the subject's
// CN and its role ("master", "agent" or "admin") as the subject's OU.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/duration.h"
#include "base/status.h"

namespace sloth::pki {

struct KeyCert {
  std::string key_pem;
  std::string cert_pem;
};

// A self-signed CA (CN = `name`, valid 10 years, basicConstraints CA:TRUE).
Result<KeyCert> CreateCa(const std::string& name);

// A new key and a certificate for it signed by `ca`: CN = `name`, OU = `role`, the given DNS
// subjectAltNames (may be empty), clientAuth + serverAuth, valid `days` days.
Result<KeyCert> Issue(const KeyCert& ca, const std::string& name, const std::string& role,
                      const std::vector<std::string>& dns_names, int days);

struct KeyCsr {
  std::string key_pem;
  std::string csr_pem;
};
// A new key and a CSR for it with CN = `name` (the agent's side of enrolment).
Result<KeyCsr> CreateCsr(const std::string& name);

// Signs `csr_pem` (the master's side of enrolment). Fails unless the CSR's signature verifies
// and its CN equals `name`. The certificate gets CN = `name`, OU = `role`, valid `days` days.
Result<std::string> SignCsr(const KeyCert& ca, const std::string& csr_pem, const std::string& name,
                            const std::string& role, int days);

struct CertInfo {
  std::string name;         // subject CN
  std::string role;         // subject OU
  std::string fingerprint;  // lowercase hex SHA-256 of the DER encoding
};
// Reads the first certificate in `cert_pem`.
Result<CertInfo> Inspect(const std::string& cert_pem);

// True when `cert_pem` was signed by `ca_cert_pem` (and is within its validity period).
bool VerifiedBy(const std::string& cert_pem, const std::string& ca_cert_pem);

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Join tokens: "<id>.<secret>.<ca-hash>", id 8 and secret 32 random [a-z0-9] characters, ca-hash
// the fingerprint of the cluster CA's certificate (64 hex characters).
struct Token {
  std::string id;
  std::string secret;
  std::string ca_hash;
};
std::string NewTokenText(const std::string& ca_hash, Token* parts);
Result<Token> ParseToken(std::string_view text);  // format check only; "malformed join token"

// Connects to host:port, does a TLS handshake without verifying anything, and returns the
// certificates the server sent (its chain) as PEM, in order. Gives up after `timeout`.
Result<std::vector<std::string>> FetchPeerChain(const std::string& host, int port,
                                                Duration timeout);

}  // namespace sloth::pki
