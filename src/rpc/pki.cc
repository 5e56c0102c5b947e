// The cluster's PKI on OpenSSL 3: every OpenSSL object lives in a unique_ptr with its own free
// function, and every failure becomes a Status carrying OpenSSL's error queue.
#include "rpc/pki.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>

namespace sloth::pki {
namespace {

template <auto kFree>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;
using AddrPtr = std::unique_ptr<addrinfo, Deleter<freeaddrinfo>>;

constexpr int kCaDays = 3650;
constexpr const char* kMasterServerName = "sloth-master";  // SNI; see distributed.md

// "<what>: <OpenSSL's errors>", draining the thread's error queue so the next call starts clean.
Status OpensslError(const std::string& what) {
  std::string message = what;
  const char* sep = ": ";
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    message += sep;
    message += buf;
    sep = "; ";
  }
  return Status::Error(message);
}

Result<std::string> BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0) return OpensslError("cannot read a memory BIO");
  return std::string(data, static_cast<size_t>(len));
}

BioPtr ReadBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

Result<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpensslError("cannot generate an EC P-256 key");
  return key;
}

Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) {
    return OpensslError("cannot encode a private key");
  }
  return BioText(bio.get());
}

Result<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509(bio.get(), cert)) return OpensslError("cannot encode a cert");
  return BioText(bio.get());
}

Result<KeyPtr> ReadKey(const std::string& pem) {
  BioPtr bio = ReadBio(pem);
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return OpensslError("cannot read the private key");
  return key;
}

Result<X509Ptr> ReadCert(const std::string& pem) {
  BioPtr bio = ReadBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return OpensslError("cannot read the certificate");
  return cert;
}

// A CA as OpenSSL objects, checked to belong together so we never sign with a stray key.
struct Ca {
  KeyPtr key;
  X509Ptr cert;
};

Result<Ca> ReadCa(const KeyCert& ca) {
  Result<KeyPtr> key = ReadKey(ca.key_pem);
  if (!key.ok()) return Status::Error("CA key: " + key.error());
  Result<X509Ptr> cert = ReadCert(ca.cert_pem);
  if (!cert.ok()) return Status::Error("CA certificate: " + cert.error());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return OpensslError("the CA key does not match the CA certificate");
  }
  return Ca{std::move(*key), std::move(*cert)};
}

Status AddNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(value.data());
  if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, bytes, static_cast<int>(value.size()),
                                  -1, 0)) {
    return OpensslError(std::string("cannot set ") + field + " \"" + value + "\"");
  }
  return Status::Ok();
}

// Subject "CN=name[, OU=role]"; the CA has no role.
Status SetSubject(X509_NAME* subject, const std::string& name, const std::string& role) {
  Status s = AddNameEntry(subject, "CN", name);
  if (s.ok() && !role.empty()) s = AddNameEntry(subject, "OU", role);
  return s;
}

// 159 random bits: positive, as RFC 5280 wants, and unguessable.
Status SetRandomSerial(X509* cert) {
  unsigned char bytes[20];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return OpensslError("cannot draw a serial number");
  bytes[0] &= 0x7f;
  BnPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    return OpensslError("cannot set the serial number");
  }
  return Status::Ok();
}

// Version 3, random serial, valid from five minutes ago (clock skew between machines) for `days`.
Status SetBasics(X509* cert, EVP_PKEY* key, X509_NAME* issuer, int days) {
  if (days <= 0) return Status::Error("validity must be at least one day");
  if (!X509_set_version(cert, X509_VERSION_3) || !X509_set_pubkey(cert, key) ||
      !X509_set_issuer_name(cert, issuer) || !X509_gmtime_adj(X509_getm_notBefore(cert), -300) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, nullptr)) {
    return OpensslError("cannot fill in the certificate");
  }
  return SetRandomSerial(cert);
}

// One extension in openssl.cnf syntax ("critical,CA:TRUE"); `issuer` is needed for the key ids.
Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || !X509_add_ext(cert, ext.get(), -1)) {
    return OpensslError(std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
  return Status::Ok();
}

GENERAL_NAME* NewDnsName(const std::string& dns) {
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  GENERAL_NAME* name = text ? GENERAL_NAME_new() : nullptr;
  if (!name || !ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size()))) {
    ASN1_IA5STRING_free(text);
    GENERAL_NAME_free(name);
    return nullptr;
  }
  GENERAL_NAME_set0_value(name, GEN_DNS, text);
  return name;
}

// Built as GENERAL_NAMEs rather than a config string so a name cannot smuggle in ",IP:...".
Status AddDnsNames(X509* cert, const std::vector<std::string>& dns_names) {
  if (dns_names.empty()) return Status::Ok();
  NamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return OpensslError("cannot allocate subjectAltNames");
  for (const std::string& dns : dns_names) {
    GENERAL_NAME* name = NewDnsName(dns);
    if (!name || sk_GENERAL_NAME_push(names.get(), name) <= 0) {
      GENERAL_NAME_free(name);
      return OpensslError("cannot add DNS name \"" + dns + "\"");
    }
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return OpensslError("cannot add the subjectAltName extension");
  }
  return Status::Ok();
}

Status AddLeafExts(X509* cert, X509* issuer, const std::vector<std::string>& dns_names) {
  struct Ext {
    int nid;
    const char* value;
  };
  static constexpr Ext kExts[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},   {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth,clientAuth"},   {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  for (const Ext& ext : kExts) {
    Status s = AddExt(cert, issuer, ext.nid, ext.value);
    if (!s.ok()) return s;
  }
  return AddDnsNames(cert, dns_names);
}

Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return OpensslError("cannot sign the certificate");
  return Status::Ok();
}

// A certificate for `pubkey` signed by `ca`, with the leaf extensions.
Result<std::string> IssueFor(const Ca& ca, EVP_PKEY* pubkey, const std::string& name,
                             const std::string& role, const std::vector<std::string>& dns_names,
                             int days) {
  X509Ptr cert(X509_new());
  if (!cert) return OpensslError("cannot allocate a certificate");
  Status s = SetBasics(cert.get(), pubkey, X509_get_subject_name(ca.cert.get()), days);
  if (s.ok()) s = SetSubject(X509_get_subject_name(cert.get()), name, role);
  if (s.ok()) s = AddLeafExts(cert.get(), ca.cert.get(), dns_names);
  if (s.ok()) s = Sign(cert.get(), ca.key.get());
  if (!s.ok()) return s;
  return CertPem(cert.get());
}

// Text of the first `nid` entry of `name`, "" when there is none.
std::string NameEntry(X509_NAME* name, int nid) {
  int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "";
  std::string text(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return text;
}

std::string Hex(const unsigned char* bytes, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 0xf];
  }
  return hex;
}

Result<std::string> Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(cert, EVP_sha256(), md, &len)) return OpensslError("cannot hash a cert");
  return Hex(md, len);
}

Result<ReqPtr> ReadCsr(const std::string& pem) {
  BioPtr bio = ReadBio(pem);
  ReqPtr req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) return OpensslError("cannot read the CSR");
  return req;
}

// The CSR's public key, once its self-signature proves the requester holds the private key.
Result<EVP_PKEY*> CsrKey(X509_REQ* req, const std::string& name) {
  EVP_PKEY* key = X509_REQ_get0_pubkey(req);
  if (!key) return OpensslError("the CSR has no usable public key");
  if (X509_REQ_verify(req, key) != 1) return OpensslError("the CSR's signature does not verify");
  std::string cn = NameEntry(X509_REQ_get_subject_name(req), NID_commonName);
  if (cn != name) {
    return Status::Error("the CSR is for \"" + cn + "\", not \"" + name + "\"");
  }
  return key;
}

// Join tokens.
constexpr char kTokenAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr size_t kTokenIdLen = 8;
constexpr size_t kTokenSecretLen = 32;
constexpr size_t kCaHashLen = 64;

// Uniform over [a-z0-9]: bytes >= 252 (= 7 * 36) are redrawn so no character is favoured. Without
// a working random generator a token would be guessable, so we stop rather than go on.
std::string RandomToken(size_t len) {
  constexpr unsigned kAlphabetSize = sizeof kTokenAlphabet - 1;
  constexpr unsigned kLimit = 256 - 256 % kAlphabetSize;
  std::string out;
  while (out.size() < len) {
    unsigned char bytes[64];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
      std::fprintf(stderr, "%s\n", OpensslError("RAND_bytes failed").message().c_str());
      std::abort();
    }
    for (unsigned char b : bytes) {
      if (b < kLimit && out.size() < len) out += kTokenAlphabet[b % kAlphabetSize];
    }
  }
  return out;
}

bool AllOf(std::string_view text, size_t len, bool (*ok)(char)) {
  return text.size() == len && std::all_of(text.begin(), text.end(), ok);
}
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsLowerHex(char c) { return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9'); }

// Peer chain fetching. The clock is steady so a wall-clock jump cannot stretch the timeout.
using Deadline = Clock::time_point;

int MillisLeft(Deadline deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Waits until `fd` is ready for `events`; false on timeout.
bool WaitFd(int fd, short events, Deadline deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int left = MillisLeft(deadline);
    int n = poll(&p, 1, left);
    if (n > 0) return true;
    if (n == 0 || (errno != EINTR) || left == 0) return false;
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A non-blocking connected socket to one address, or an error saying why not.
Result<Fd> ConnectOne(const addrinfo& ai, Deadline deadline) {
  Fd fd(socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (fd.get() < 0) return Status::Error(std::string("socket: ") + std::strerror(errno));
  if (connect(fd.get(), ai.ai_addr, ai.ai_addrlen) == 0) return fd;
  if (errno != EINPROGRESS) return Status::Error(std::strerror(errno));
  if (!WaitFd(fd.get(), POLLOUT, deadline)) return Status::Error("timed out");
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return Status::Error(std::strerror(err));
  return fd;
}

// Tries every address getaddrinfo gives (IPv4 and IPv6) until one connects. Name resolution
// itself is not bounded by the deadline (getaddrinfo has no timeout).
Result<Fd> Connect(const std::string& host, int port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  std::string where = host + ":" + std::to_string(port);
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (rc != 0) return Status::Error("cannot resolve " + host + ": " + gai_strerror(rc));
  AddrPtr addrs(list);
  std::string why = "no address";
  for (addrinfo* ai = addrs.get(); ai != nullptr; ai = ai->ai_next) {
    Result<Fd> fd = ConnectOne(*ai, deadline);
    if (fd.ok()) return fd;
    why = fd.error();
  }
  return Status::Error("cannot connect to " + where + ": " + why);
}

// OpenSSL writes to the socket with write(), which raises SIGPIPE if the peer has gone; block it
// in this thread for the duration and swallow any we caused.
class BlockSigpipe {
 public:
  BlockSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~BlockSigpipe() {
    if (!blocked_) return;
    sigset_t pending;
    sigpending(&pending);
    timespec zero{0, 0};
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) sigtimedwait(&pipe_, nullptr, &zero);
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  BlockSigpipe(const BlockSigpipe&) = delete;
  BlockSigpipe& operator=(const BlockSigpipe&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
  bool blocked_ = false;
};

// A client context that trusts anything: the caller pins what it gets by fingerprint. gRPC
// servers refuse a handshake without ALPN "h2".
Result<SslPtr> NewClientSsl(int fd) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return OpensslError("cannot create a TLS context");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  static constexpr unsigned char kAlpn[] = {2, 'h', '2'};
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn) != 0) {  // 0 means success here
    return OpensslError("cannot set ALPN");
  }
  SslPtr ssl(SSL_new(ctx.get()));  // holds its own reference to ctx
  if (!ssl || !SSL_set_fd(ssl.get(), fd) ||
      !SSL_set_tlsext_host_name(ssl.get(), kMasterServerName)) {
    return OpensslError("cannot set up the TLS connection");
  }
  return ssl;
}

Status Handshake(SSL* ssl, int fd, Deadline deadline) {
  while (true) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl);
    if (rc == 1) return Status::Ok();
    int err = SSL_get_error(ssl, rc);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        return Status::Error(std::string("TLS handshake failed: ") +
                             (errno != 0 ? std::strerror(errno) : "connection closed by peer"));
      }
      return OpensslError("TLS handshake failed");
    }
    if (!WaitFd(fd, events, deadline)) return Status::Error("TLS handshake timed out");
  }
}

Result<std::vector<std::string>> PeerChain(SSL* ssl) {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // owned by ssl; client side has the leaf
  if (chain == nullptr || sk_X509_num(chain) == 0) {
    return Status::Error("the server sent no certificate");
  }
  std::vector<std::string> pems;
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    Result<std::string> pem = CertPem(sk_X509_value(chain, i));
    if (!pem.ok()) return pem.status();
    pems.push_back(std::move(*pem));
  }
  return pems;
}

}  // namespace

Result<KeyCert> CreateCa(const std::string& name) {
  Result<KeyPtr> key = NewKey();
  if (!key.ok()) return key.status();
  X509Ptr cert(X509_new());
  if (!cert) return OpensslError("cannot allocate a certificate");
  X509* x = cert.get();
  Status s = SetSubject(X509_get_subject_name(x), name, "");
  if (s.ok()) s = SetBasics(x, key->get(), X509_get_subject_name(x), kCaDays);
  if (s.ok()) s = AddExt(x, x, NID_basic_constraints, "critical,CA:TRUE");
  if (s.ok()) s = AddExt(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  if (s.ok()) s = AddExt(x, x, NID_subject_key_identifier, "hash");
  if (s.ok()) s = AddExt(x, x, NID_authority_key_identifier, "keyid:always");
  if (s.ok()) s = Sign(x, key->get());
  if (!s.ok()) return s;
  Result<std::string> key_pem = KeyPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  Result<std::string> cert_pem = CertPem(x);
  if (!cert_pem.ok()) return cert_pem.status();
  return KeyCert{std::move(*key_pem), std::move(*cert_pem)};
}

Result<KeyCert> Issue(const KeyCert& ca, const std::string& name, const std::string& role,
                      const std::vector<std::string>& dns_names, int days) {
  Result<Ca> issuer = ReadCa(ca);
  if (!issuer.ok()) return issuer.status();
  Result<KeyPtr> key = NewKey();
  if (!key.ok()) return key.status();
  Result<std::string> cert = IssueFor(*issuer, key->get(), name, role, dns_names, days);
  if (!cert.ok()) return cert.status();
  Result<std::string> key_pem = KeyPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  return KeyCert{std::move(*key_pem), std::move(*cert)};
}

Result<KeyCsr> CreateCsr(const std::string& name) {
  Result<KeyPtr> key = NewKey();
  if (!key.ok()) return key.status();
  ReqPtr req(X509_REQ_new());
  if (!req) return OpensslError("cannot allocate a CSR");
  Status s = SetSubject(X509_REQ_get_subject_name(req.get()), name, "");
  if (!s.ok()) return s;
  if (!X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) ||
      !X509_REQ_set_pubkey(req.get(), key->get()) ||
      X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) {
    return OpensslError("cannot sign the CSR");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509_REQ(bio.get(), req.get())) {
    return OpensslError("cannot encode the CSR");
  }
  Result<std::string> csr_pem = BioText(bio.get());
  if (!csr_pem.ok()) return csr_pem.status();
  Result<std::string> key_pem = KeyPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  return KeyCsr{std::move(*key_pem), std::move(*csr_pem)};
}

Result<std::string> SignCsr(const KeyCert& ca, const std::string& csr_pem, const std::string& name,
                            const std::string& role, int days) {
  Result<Ca> issuer = ReadCa(ca);
  if (!issuer.ok()) return issuer.status();
  Result<ReqPtr> req = ReadCsr(csr_pem);
  if (!req.ok()) return req.status();
  Result<EVP_PKEY*> key = CsrKey(req->get(), name);
  if (!key.ok()) return key.status();
  // Only the name and key come from the CSR: any extensions it asks for are ignored.
  return IssueFor(*issuer, *key, name, role, {}, days);
}

Result<CertInfo> Inspect(const std::string& cert_pem) {
  Result<X509Ptr> cert = ReadCert(cert_pem);
  if (!cert.ok()) return cert.status();
  Result<std::string> fingerprint = Fingerprint(cert->get());
  if (!fingerprint.ok()) return fingerprint.status();
  X509_NAME* subject = X509_get_subject_name(cert->get());
  return CertInfo{NameEntry(subject, NID_commonName),
                  NameEntry(subject, NID_organizationalUnitName), std::move(*fingerprint)};
}

bool VerifiedBy(const std::string& cert_pem, const std::string& ca_cert_pem) {
  Result<X509Ptr> cert = ReadCert(cert_pem);
  Result<X509Ptr> ca = ReadCert(ca_cert_pem);
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  bool ok = cert.ok() && ca.ok() && store && ctx && X509_STORE_add_cert(store.get(), ca->get()) &&
            X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) &&
            X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();  // a "no" is an answer, not an error to leave behind
  return ok;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr)) {
    // Only a broken OpenSSL install gets here; an empty hash matches no certificate.
    ERR_clear_error();
    return "";
  }
  return Hex(md, len);
}

std::string NewTokenText(const std::string& ca_hash, Token* parts) {
  Token token{RandomToken(kTokenIdLen), RandomToken(kTokenSecretLen), ca_hash};
  std::string text = token.id + "." + token.secret + "." + token.ca_hash;
  if (parts != nullptr) *parts = std::move(token);
  return text;
}

Result<Token> ParseToken(std::string_view text) {
  size_t first = text.find('.');
  size_t second = first == std::string_view::npos ? first : text.find('.', first + 1);
  if (second == std::string_view::npos) return Status::Error("malformed join token");
  std::string_view id = text.substr(0, first);
  std::string_view secret = text.substr(first + 1, second - first - 1);
  std::string_view ca_hash = text.substr(second + 1);  // a third dot fails the hex check
  if (!AllOf(id, kTokenIdLen, IsLowerAlnum) || !AllOf(secret, kTokenSecretLen, IsLowerAlnum) ||
      !AllOf(ca_hash, kCaHashLen, IsLowerHex)) {
    return Status::Error("malformed join token");
  }
  return Token{std::string(id), std::string(secret), std::string(ca_hash)};
}

Result<std::vector<std::string>> FetchPeerChain(const std::string& host, int port,
                                                Duration timeout) {
  if (port <= 0 || port > 65535) return Status::Error("bad port " + std::to_string(port));
  Deadline deadline = Clock::now() + timeout;
  BlockSigpipe no_sigpipe;
  Result<Fd> fd = Connect(host, port, deadline);
  if (!fd.ok()) return fd.status();
  Result<SslPtr> ssl = NewClientSsl(fd->get());
  if (!ssl.ok()) return ssl.status();
  Status s = Handshake(ssl->get(), fd->get(), deadline);
  if (!s.ok()) return Status::Error(s.message() + " (" + host + ":" + std::to_string(port) + ")");
  // No close_notify: we only wanted the chain, and closing the socket tells the server enough.
  return PeerChain(ssl->get());
}

}  // namespace sloth::pki
