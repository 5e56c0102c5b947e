// Tests for the PKI against real OpenSSL: certificates are cross-checked with the `openssl` command
// line tool, and FetchPeerChain talks to a real TLS server on loopback.
#include "rpc/pki.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sloth::pki {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// ---- helpers: OpenSSL objects from PEM, the openssl tool, temp files ----

template <auto kFree>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;

BioPtr MemBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}
X509Ptr ParseCert(const std::string& pem) {
  return X509Ptr(PEM_read_bio_X509(MemBio(pem).get(), nullptr, nullptr, nullptr));
}
KeyPtr ParseKey(const std::string& pem) {
  return KeyPtr(PEM_read_bio_PrivateKey(MemBio(pem).get(), nullptr, nullptr, nullptr));
}
ReqPtr ParseCsr(const std::string& pem) {
  return ReqPtr(PEM_read_bio_X509_REQ(MemBio(pem).get(), nullptr, nullptr, nullptr));
}

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string CsrPem(X509_REQ* req) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req);
  return BioString(bio.get());
}

std::string CertDer(const std::string& pem) {
  X509Ptr cert = ParseCert(pem);
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(std::max(len, 0)));
  OPENSSL_free(der);
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pki_test.XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    return file;
  }

 private:
  std::string path_;
};

struct Output {
  int exit_code;
  std::string text;
};
// Runs a shell command as a child process and collects its stdout and stderr.
Output RunCommand(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string text;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) text.append(buf.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// "sha256 Fingerprint=AB:CD:..." from the openssl tool, as lowercase hex without colons.
std::string ToolFingerprint(const std::string& cert_file) {
  Output out = RunCommand("openssl x509 -noout -fingerprint -sha256 -in " + cert_file);
  EXPECT_EQ(out.exit_code, 0) << out.text;
  std::string hex = out.text.substr(out.text.find('=') + 1);
  std::erase_if(hex, [](char c) { return c == ':' || c == '\n'; });
  std::transform(hex.begin(), hex.end(), hex.begin(), [](char c) { return std::tolower(c); });
  return hex;
}

KeyCert MustCa(const std::string& name) {
  Result<KeyCert> ca = CreateCa(name);
  EXPECT_TRUE(ca.ok()) << ca.error();
  return ca.ok() ? *ca : KeyCert{};
}

KeyCert MustIssue(const KeyCert& ca, const std::string& name, const std::string& role,
                  const std::vector<std::string>& dns) {
  Result<KeyCert> kc = Issue(ca, name, role, dns, 3650);
  EXPECT_TRUE(kc.ok()) << kc.error();
  return kc.ok() ? *kc : KeyCert{};
}

bool KeyMatchesCert(const std::string& key_pem, const std::string& cert_pem) {
  KeyPtr key = ParseKey(key_pem);
  X509Ptr cert = ParseCert(cert_pem);
  return key && cert && X509_check_private_key(cert.get(), key.get()) == 1;
}

// ---- certificates ----

TEST(Pki, CreateCa_IsSelfSignedCaWithItsName) {
  KeyCert ca = MustCa("sloth-ca");
  ASSERT_TRUE(KeyMatchesCert(ca.key_pem, ca.cert_pem));
  Result<CertInfo> info = Inspect(ca.cert_pem);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->name, "sloth-ca");
  EXPECT_EQ(info->role, "");
  EXPECT_TRUE(VerifiedBy(ca.cert_pem, ca.cert_pem));

  TempDir dir;
  std::string file = dir.Write("ca.pem", ca.cert_pem);
  Output text = RunCommand("openssl x509 -noout -text -in " + file);
  ASSERT_EQ(text.exit_code, 0) << text.text;
  EXPECT_NE(text.text.find("Version: 3"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("CA:TRUE"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("Certificate Sign"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("ecdsa-with-SHA256"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("prime256v1"), std::string::npos) << text.text;
}

TEST(Pki, CreateCa_NotBeforeIsInThePastToAllowClockSkew) {
  KeyCert ca = MustCa("ca");
  X509Ptr cert = ParseCert(ca.cert_pem);
  ASSERT_TRUE(cert);
  // Compare against "now - 4 minutes": a cert starting exactly now would fail on a peer whose
  // clock runs a little behind.
  time_t four_minutes_ago = time(nullptr) - 240;
  EXPECT_LT(X509_cmp_time(X509_get0_notBefore(cert.get()), &four_minutes_ago), 0);
  time_t in_nine_years = time(nullptr) + 9L * 365 * 86400;
  EXPECT_GT(X509_cmp_time(X509_get0_notAfter(cert.get()), &in_nine_years), 0);
}

TEST(Pki, CreateCa_SerialsAreRandom) {
  X509Ptr a = ParseCert(MustCa("ca").cert_pem);
  X509Ptr b = ParseCert(MustCa("ca").cert_pem);
  ASSERT_TRUE(a && b);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a.get()), X509_get0_serialNumber(b.get())), 0);
}

TEST(Pki, Issue_SetsNameRoleAndDnsNames) {
  KeyCert ca = MustCa("sloth-ca");
  KeyCert master = MustIssue(ca, "sloth-master", "master", {"sloth-master", "localhost"});
  EXPECT_TRUE(KeyMatchesCert(master.key_pem, master.cert_pem));
  Result<CertInfo> info = Inspect(master.cert_pem);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->name, "sloth-master");
  EXPECT_EQ(info->role, "master");

  TempDir dir;
  std::string file = dir.Write("master.pem", master.cert_pem);
  Output text = RunCommand("openssl x509 -noout -text -in " + file);
  ASSERT_EQ(text.exit_code, 0) << text.text;
  EXPECT_NE(text.text.find("DNS:sloth-master, DNS:localhost"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("TLS Web Server Authentication, TLS Web Client Authentication"),
            std::string::npos)
      << text.text;
  EXPECT_NE(text.text.find("CA:FALSE"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("Issuer: CN = sloth-ca"), std::string::npos) << text.text;
}

TEST(Pki, Issue_WithoutDnsNamesHasNoSubjectAltName) {
  KeyCert ca = MustCa("ca");
  KeyCert admin = MustIssue(ca, "admin", "admin", {});
  TempDir dir;
  Output text =
      RunCommand("openssl x509 -noout -text -in " + dir.Write("admin.pem", admin.cert_pem));
  ASSERT_EQ(text.exit_code, 0) << text.text;
  EXPECT_EQ(text.text.find("Subject Alternative Name"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("Subject: CN = admin, OU = admin"), std::string::npos) << text.text;
}

TEST(Pki, Issue_CertVerifiesWithOpensslToolForServerAndClientUse) {
  KeyCert ca = MustCa("ca");
  KeyCert leaf = MustIssue(ca, "sloth-master", "master", {"sloth-master"});
  TempDir dir;
  std::string ca_file = dir.Write("ca.pem", ca.cert_pem);
  std::string leaf_file = dir.Write("leaf.pem", leaf.cert_pem);
  for (const char* purpose : {"sslserver", "sslclient"}) {
    Output out = RunCommand("openssl verify -purpose " + std::string(purpose) + " -CAfile " +
                            ca_file + " " + leaf_file);
    EXPECT_EQ(out.exit_code, 0) << purpose << ": " << out.text;
    EXPECT_NE(out.text.find(": OK"), std::string::npos) << out.text;
  }
}

TEST(Pki, Inspect_FingerprintIsSha256OfDerAndMatchesOpensslTool) {
  KeyCert ca = MustCa("ca");
  KeyCert leaf = MustIssue(ca, "web-01", "agent", {});
  Result<CertInfo> info = Inspect(leaf.cert_pem);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->fingerprint.size(), 64u);
  EXPECT_EQ(info->fingerprint, Sha256Hex(CertDer(leaf.cert_pem)));
  TempDir dir;
  EXPECT_EQ(info->fingerprint, ToolFingerprint(dir.Write("leaf.pem", leaf.cert_pem)));
}

TEST(Pki, Inspect_ReadsTheFirstCertOfAChain) {
  KeyCert ca = MustCa("the-ca");
  KeyCert leaf = MustIssue(ca, "leaf", "agent", {});
  Result<CertInfo> info = Inspect(leaf.cert_pem + ca.cert_pem);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->name, "leaf");
}

TEST(Pki, Inspect_RejectsGarbage) {
  for (const char* text : {"", "not a certificate",
                           "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}) {
    Result<CertInfo> info = Inspect(text);
    ASSERT_FALSE(info.ok()) << text;
    EXPECT_NE(info.error().find("cannot read the certificate"), std::string::npos) << info.error();
  }
}

TEST(Pki, VerifiedBy_OnlyTheIssuingCa) {
  KeyCert ca = MustCa("ca");
  KeyCert other = MustCa("ca");  // same name, different key: must not be confused
  KeyCert leaf = MustIssue(ca, "web-01", "agent", {});
  EXPECT_TRUE(VerifiedBy(leaf.cert_pem, ca.cert_pem));
  EXPECT_FALSE(VerifiedBy(leaf.cert_pem, other.cert_pem));
  EXPECT_FALSE(VerifiedBy(ca.cert_pem, other.cert_pem));
  EXPECT_FALSE(VerifiedBy("garbage", ca.cert_pem));
  EXPECT_FALSE(VerifiedBy(leaf.cert_pem, "garbage"));
}

TEST(Pki, VerifiedBy_ALeafCannotActAsACa) {
  KeyCert ca = MustCa("ca");
  KeyCert leaf = MustIssue(ca, "web-01", "agent", {});
  // A leaf's key signing another cert: the result must not chain to the leaf (CA:FALSE).
  Result<KeyCert> grandchild = Issue(leaf, "evil", "admin", {}, 1);
  ASSERT_TRUE(grandchild.ok()) << grandchild.error();
  EXPECT_FALSE(VerifiedBy(grandchild->cert_pem, leaf.cert_pem));
}

TEST(Pki, Issue_RefusesACaKeyThatDoesNotMatchItsCert) {
  KeyCert ca = MustCa("ca");
  KeyCert other = MustCa("other");
  Result<KeyCert> leaf = Issue(KeyCert{other.key_pem, ca.cert_pem}, "x", "agent", {}, 1);
  ASSERT_FALSE(leaf.ok());
  EXPECT_NE(leaf.error().find("does not match"), std::string::npos) << leaf.error();
}

TEST(Pki, Issue_ReportsOpensslErrors) {
  KeyCert ca = MustCa("ca");
  Result<KeyCert> bad_key = Issue(KeyCert{"nonsense", ca.cert_pem}, "x", "agent", {}, 1);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.error().find("CA key: cannot read the private key: error:"), std::string::npos)
      << bad_key.error();
  // X.509 limits a CN to 64 characters; OpenSSL refuses and says why.
  Result<KeyCert> long_name = Issue(ca, std::string(65, 'a'), "agent", {}, 1);
  ASSERT_FALSE(long_name.ok());
  EXPECT_NE(long_name.error().find("cannot set CN"), std::string::npos) << long_name.error();
  EXPECT_NE(long_name.error().find("error:"), std::string::npos) << long_name.error();
  Result<KeyCert> no_days = Issue(ca, "x", "agent", {}, 0);
  EXPECT_FALSE(no_days.ok());
}

// ---- CSRs ----

TEST(Pki, Csr_RoundTripGivesAgentCertForTheCsrKey) {
  KeyCert ca = MustCa("ca");
  Result<KeyCsr> csr = CreateCsr("web-01");
  ASSERT_TRUE(csr.ok()) << csr.error();
  TempDir dir;
  Output check =
      RunCommand("openssl req -noout -verify -subject -in " + dir.Write("r.csr", csr->csr_pem));
  EXPECT_EQ(check.exit_code, 0) << check.text;
  EXPECT_NE(check.text.find("CN = web-01"), std::string::npos) << check.text;

  Result<std::string> cert = SignCsr(ca, csr->csr_pem, "web-01", "agent", 3650);
  ASSERT_TRUE(cert.ok()) << cert.error();
  EXPECT_TRUE(KeyMatchesCert(csr->key_pem, *cert));
  EXPECT_TRUE(VerifiedBy(*cert, ca.cert_pem));
  Result<CertInfo> info = Inspect(*cert);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->name, "web-01");
  EXPECT_EQ(info->role, "agent");
}

TEST(Pki, SignCsr_RefusesAnotherName) {
  KeyCert ca = MustCa("ca");
  Result<KeyCsr> csr = CreateCsr("web-02");
  ASSERT_TRUE(csr.ok()) << csr.error();
  Result<std::string> cert = SignCsr(ca, csr->csr_pem, "web-01", "agent", 3650);
  ASSERT_FALSE(cert.ok());
  EXPECT_EQ(cert.error(), "the CSR is for \"web-02\", not \"web-01\"");
}

TEST(Pki, SignCsr_RefusesGarbage) {
  KeyCert ca = MustCa("ca");
  for (const char* text :
       {"", "hello",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}) {
    Result<std::string> cert = SignCsr(ca, text, "web-01", "agent", 3650);
    ASSERT_FALSE(cert.ok()) << text;
    EXPECT_NE(cert.error().find("cannot read the CSR"), std::string::npos) << cert.error();
  }
}

TEST(Pki, SignCsr_RefusesABrokenSignature) {
  KeyCert ca = MustCa("ca");
  Result<KeyCsr> csr = CreateCsr("web-01");
  ASSERT_TRUE(csr.ok()) << csr.error();
  ReqPtr req = ParseCsr(csr->csr_pem);
  ASSERT_TRUE(req);
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  ASSERT_GT(len, 0);
  der[len - 1] ^= 0x01;  // the last byte belongs to the signature's S value
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio(bio.get(), "CERTIFICATE REQUEST", "", der, len);
  OPENSSL_free(der);

  Result<std::string> cert = SignCsr(ca, BioString(bio.get()), "web-01", "agent", 3650);
  ASSERT_FALSE(cert.ok());
  EXPECT_NE(cert.error().find("signature does not verify"), std::string::npos) << cert.error();
}

TEST(Pki, SignCsr_RefusesACsrWhosePublicKeyWasSwapped) {
  // Someone else's key in a CSR signed by ours: we could not prove we hold that key.
  KeyCert ca = MustCa("ca");
  Result<KeyCsr> csr = CreateCsr("web-01");
  Result<KeyCsr> victim = CreateCsr("victim");
  ASSERT_TRUE(csr.ok() && victim.ok());
  ReqPtr req = ParseCsr(csr->csr_pem);
  KeyPtr victim_key = ParseKey(victim->key_pem);
  ASSERT_TRUE(req && victim_key);
  ASSERT_EQ(X509_REQ_set_pubkey(req.get(), victim_key.get()), 1);

  Result<std::string> cert = SignCsr(ca, CsrPem(req.get()), "web-01", "agent", 3650);
  ASSERT_FALSE(cert.ok());
  EXPECT_NE(cert.error().find("signature does not verify"), std::string::npos) << cert.error();
}

// ---- hashes and tokens ----

TEST(Pki, Sha256Hex_KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

const std::string kHash = Sha256Hex("some ca");

TEST(Pki, Token_RoundTrip) {
  Token parts;
  std::string text = NewTokenText(kHash, &parts);
  EXPECT_EQ(text.size(), 8u + 1 + 32 + 1 + 64);
  EXPECT_EQ(text, parts.id + "." + parts.secret + "." + kHash);
  Result<Token> parsed = ParseToken(text);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->id, parts.id);
  EXPECT_EQ(parsed->secret, parts.secret);
  EXPECT_EQ(parsed->ca_hash, kHash);
  EXPECT_NE(NewTokenText(kHash, nullptr), text);
}

TEST(Pki, Token_CharactersAreUniform) {
  // 400,000 characters: each of the 36 expected ~11,111 times (sd ~104). Mapping bytes with a
  // plain "% 36" would give 'a'..'d' 12.5% too many, far outside the 5% allowed here.
  std::map<char, int> counts;
  for (int i = 0; i < 10000; ++i) {
    Token parts;
    NewTokenText(kHash, &parts);
    for (char c : parts.id + parts.secret) ++counts[c];
  }
  ASSERT_EQ(counts.size(), 36u);
  double mean = 400000.0 / 36;
  for (auto [c, n] : counts) {
    EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << c;
    EXPECT_NEAR(n, mean, mean * 0.05) << "character " << c;
  }
}

TEST(Pki, ParseToken_RejectsMalformed) {
  const std::string id(8, 'a'), secret(32, 'b'), hash(64, 'c');
  ASSERT_TRUE(ParseToken(id + "." + secret + "." + hash).ok());
  const std::vector<std::string> bad = {
      "",
      "abc",
      id + "." + secret,                                // missing ca-hash
      id + "." + secret + ".",                          // empty ca-hash
      "." + secret + "." + hash,                        // empty id
      id + ".." + hash,                                 // empty secret
      id + secret + hash,                               // no dots
      id + "." + secret + "." + hash + ".",             // extra dot
      id + "." + secret + "." + hash + ".x",            // extra part
      id + "." + secret + ".." + hash,                  // doubled dot
      std::string(7, 'a') + "." + secret + "." + hash,  // short id
      std::string(9, 'a') + "." + secret + "." + hash,  // long id
      id + "." + std::string(31, 'b') + "." + hash,
      id + "." + std::string(33, 'b') + "." + hash,
      id + "." + secret + "." + std::string(63, 'c'),
      id + "." + secret + "." + std::string(65, 'c'),
      "aaaaaaaA." + secret + "." + hash,                      // uppercase id
      id + "." + std::string(31, 'b') + "B." + hash,          // uppercase secret
      id + "." + secret + "." + std::string(63, 'c') + "C",   // uppercase hash
      id + "." + secret + "." + std::string(63, 'c') + "g",   // not hex
      "aaaa-aaa." + secret + "." + hash,                      // punctuation
      " " + id + "." + secret + "." + hash,                   // leading space
      id + "." + secret + "." + hash + "\n",                  // trailing newline
      id + "." + secret + "." + hash + std::string(1, '\0'),  // embedded NUL
  };
  for (const std::string& text : bad) {
    Result<Token> token = ParseToken(text);
    ASSERT_FALSE(token.ok()) << "accepted: " << text;
    EXPECT_EQ(token.error(), "malformed join token");
  }
}

// ---- FetchPeerChain ----

// A listening TCP socket on loopback (IPv4 or IPv6) with an ephemeral port.
class Listener {
 public:
  explicit Listener(int family) {
    fd_ = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage addr{};
    socklen_t len;
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    }
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      Close();
      return;
    }
    port_ = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                     : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  ~Listener() { Close(); }
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  int port() const { return port_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Accepts one connection (waiting at most 10 s) and returns its fd, or -1.
int AcceptOne(int listener) {
  pollfd p{listener, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) return -1;
  int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// The server picks "h2" if the client offers it, as a gRPC server would.
int SelectH2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
             unsigned int inlen, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kH2, sizeof kH2, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int AcceptAnyClientCert(int, X509_STORE_CTX*) { return 1; }

// A one-connection TLS server on a thread: presents `leaf` followed by `ca`, and asks for (but
// does not require) a client certificate, as the master does. Records what the client sent.
class TlsServer {
 public:
  TlsServer(const KeyCert& leaf, const KeyCert& ca, int family = AF_INET) : listener_(family) {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    X509Ptr cert = ParseCert(leaf.cert_pem);
    X509Ptr ca_cert = ParseCert(ca.cert_pem);
    KeyPtr key = ParseKey(leaf.key_pem);
    ready_ = listener_.ok() && ctx_ && cert && ca_cert && key &&
             SSL_CTX_use_certificate(ctx_.get(), cert.get()) == 1 &&
             SSL_CTX_use_PrivateKey(ctx_.get(), key.get()) == 1 &&
             SSL_CTX_add1_chain_cert(ctx_.get(), ca_cert.get()) == 1;
    SSL_CTX_set_alpn_select_cb(ctx_.get(), SelectH2, nullptr);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, AcceptAnyClientCert);
    if (ready_) thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    if (thread_.joinable()) thread_.join();
  }
  bool ready() const { return ready_; }
  int port() const { return listener_.port(); }
  void Join() { thread_.join(); }
  // Valid after Join().
  bool handshake_ok() const { return handshake_ok_; }
  const std::string& sni() const { return sni_; }
  const std::string& alpn() const { return alpn_; }

 private:
  void Serve() {
    // A client that hangs up early must not kill the test with SIGPIPE.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    int fd = AcceptOne(listener_.fd());
    if (fd < 0) return;
    SslPtr ssl(SSL_new(ctx_.get()));
    SSL_set_fd(ssl.get(), fd);
    handshake_ok_ = SSL_accept(ssl.get()) == 1;
    if (const char* name = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name)) sni_ = name;
    const unsigned char* proto = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl.get(), &proto, &len);
    alpn_.assign(reinterpret_cast<const char*>(proto), len);
    char byte;
    while (handshake_ok_ && SSL_read(ssl.get(), &byte, 1) > 0) {
    }  // until the client goes away
    close(fd);
  }

  Listener listener_;
  SslCtxPtr ctx_;
  bool ready_ = false;
  std::thread thread_;
  bool handshake_ok_ = false;
  std::string sni_, alpn_;
};

TEST(Pki, FetchPeerChain_ReturnsLeafThenCa) {
  KeyCert ca = MustCa("sloth-ca");
  KeyCert master = MustIssue(ca, "sloth-master", "master", {"sloth-master"});
  TlsServer server(master, ca);
  ASSERT_TRUE(server.ready());

  Result<std::vector<std::string>> chain = FetchPeerChain("127.0.0.1", server.port(), seconds(5));
  ASSERT_TRUE(chain.ok()) << chain.error();
  server.Join();
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ(Inspect((*chain)[0])->fingerprint, Inspect(master.cert_pem)->fingerprint);
  EXPECT_EQ(Inspect((*chain)[1])->fingerprint, Inspect(ca.cert_pem)->fingerprint);
  EXPECT_TRUE(VerifiedBy((*chain)[0], (*chain)[1]));
  EXPECT_TRUE(server.handshake_ok());
  EXPECT_EQ(server.sni(), "sloth-master");
  EXPECT_EQ(server.alpn(), "h2");
}

TEST(Pki, FetchPeerChain_ResolvesHostNamesAndIpv6) {
  KeyCert ca = MustCa("sloth-ca");
  KeyCert master = MustIssue(ca, "sloth-master", "master", {"sloth-master"});
  TlsServer server(master, ca, AF_INET6);
  if (!server.ready()) GTEST_SKIP() << "no IPv6 loopback here";
  Result<std::vector<std::string>> chain = FetchPeerChain("::1", server.port(), seconds(5));
  ASSERT_TRUE(chain.ok()) << chain.error();
  EXPECT_EQ(chain->size(), 2u);
  server.Join();

  TlsServer v4(master, ca, AF_INET);
  ASSERT_TRUE(v4.ready());
  // "localhost" may resolve to ::1 first; the IPv4 address must be tried after it fails.
  chain = FetchPeerChain("localhost", v4.port(), seconds(5));
  ASSERT_TRUE(chain.ok()) << chain.error();
  EXPECT_EQ(chain->size(), 2u);
}

TEST(Pki, FetchPeerChain_ClosedPortFailsQuickly) {
  int port;
  {
    Listener listener(AF_INET);
    ASSERT_TRUE(listener.ok());
    port = listener.port();
  }
  auto start = std::chrono::steady_clock::now();
  Result<std::vector<std::string>> chain = FetchPeerChain("127.0.0.1", port, seconds(10));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().find("cannot connect to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << chain.error();
  EXPECT_NE(chain.error().find("refused"), std::string::npos) << chain.error();
  EXPECT_LT(took, seconds(2));
}

TEST(Pki, FetchPeerChain_SilentServerTimesOut) {
  Listener listener(AF_INET);  // the kernel completes the TCP handshake; nobody ever speaks TLS
  ASSERT_TRUE(listener.ok());
  auto start = std::chrono::steady_clock::now();
  Result<std::vector<std::string>> chain =
      FetchPeerChain("127.0.0.1", listener.port(), milliseconds(300));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().find("timed out"), std::string::npos) << chain.error();
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, seconds(2));
}

TEST(Pki, FetchPeerChain_NonTlsServerFails) {
  Listener listener(AF_INET);
  ASSERT_TRUE(listener.ok());
  std::thread server([&] {
    int fd = AcceptOne(listener.fd());
    if (fd < 0) return;
    const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    send(fd, reply, sizeof reply - 1, MSG_NOSIGNAL);
    close(fd);
  });
  Result<std::vector<std::string>> chain = FetchPeerChain("127.0.0.1", listener.port(), seconds(5));
  server.join();
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().find("TLS handshake failed"), std::string::npos) << chain.error();
}

TEST(Pki, FetchPeerChain_BadPortIsAnError) {
  EXPECT_FALSE(FetchPeerChain("127.0.0.1", 0, seconds(1)).ok());
  EXPECT_FALSE(FetchPeerChain("127.0.0.1", 70000, seconds(1)).ok());
}

}  // namespace
}  // namespace sloth::pki
