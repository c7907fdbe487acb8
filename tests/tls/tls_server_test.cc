// SPDX-License-Identifier: MIT
// ICAP over TLS end to end in-process: a server with a TLS listener (and a
// plain one beside it) and a blocking OpenSSL client. Certificates come from
// make-certs.sh (the ctest fixture tls.certs), in $ICAP_TEST_CERTS.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../integration/harness.hpp"

namespace {

using itest::ms;

std::string certs() {
  const char *d = getenv("ICAP_TEST_CERTS");
  return d ? d : "";
}

std::string cert_path(const std::string &name) { return certs() + "/" + name; }

bool have_certs() {
  struct stat st;
  return !certs().empty() && stat(cert_path("ca.pem").c_str(), &st) == 0;
}

#define REQUIRE_CERTS() \
  if (!have_certs()) GTEST_SKIP() << "no test certificates: run through ctest (fixture tls.certs)"

// An OPTIONS request for "svc" on a plain or a TLS connection.
const char kOptionsSvc[] = "OPTIONS icap://127.0.0.1/svc ICAP/1.0\r\nHost: x\r\n\r\n";

// A blocking TLS client with 10 s socket timeouts on every call.
class TlsClient {
 public:
  struct Options {
    bool verify = true;  // verify the server against ca.pem
    std::string cert, key;
  };
  explicit TlsClient(const Options &o) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (o.verify) {
      SSL_CTX_load_verify_locations(ctx_, cert_path("ca.pem").c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (!o.cert.empty()) {
      SSL_CTX_use_certificate_chain_file(ctx_, cert_path(o.cert).c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, cert_path(o.key).c_str(), SSL_FILETYPE_PEM);
    }
  }
  TlsClient() : TlsClient(Options{}) {}
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(ctx_);
  }

  static int tcp_connect(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // TCP connect and TLS handshake; false with error() on failure.
  bool connect(int port) {
    fd_ = tcp_connect(port);
    if (fd_ < 0) return err("connect failed");
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) return err("handshake failed");
    return true;
  }

  // Sends an OPTIONS request and reads the bodiless answer's head.
  bool options(const std::string &service, std::string *head) {
    std::string req = "OPTIONS icap://127.0.0.1/" + service +
                      " ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n";
    ERR_clear_error();
    if (SSL_write(ssl_, req.data(), static_cast<int>(req.size())) <= 0) return err("write failed");
    head->clear();
    for (int i = 0; i < 1000 && head->find("\r\n\r\n") == std::string::npos; i++) {
      char buf[4096];
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) return err("read failed");
      head->append(buf, static_cast<size_t>(n));
    }
    return head->find("\r\n\r\n") != std::string::npos;
  }

  // The serial number of the server's certificate, in hex.
  std::string server_serial() {
    X509 *c = SSL_get0_peer_certificate(ssl_);
    if (!c) return "";
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), nullptr);
    char *hex = BN_bn2hex(bn);
    std::string s = hex;
    OPENSSL_free(hex);
    BN_free(bn);
    return s;
  }

  // True when the server ends the connection (EOF, reset or alert) within
  // the socket timeout, without sending application data.
  bool refused() {
    char buf[256];
    ERR_clear_error();
    int n = SSL_read(ssl_, buf, sizeof buf);
    return n <= 0 && SSL_get_error(ssl_, n) != SSL_ERROR_WANT_READ;
  }

  // True when the server refuses this client on `port`: the handshake
  // fails or, since TLS 1.3 finishes the client's side before the server
  // has judged the certificate, the refusal arrives as an alert on the
  // first read after a request.
  bool refused_on(int port) {
    if (!connect(port)) return true;
    SSL_write(ssl_, kOptionsSvc, static_cast<int>(strlen(kOptionsSvc)));
    return refused();
  }

  bool close_notify_received() {
    char buf[256];
    int n = SSL_read(ssl_, buf, sizeof buf);
    return n == 0 && SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN;
  }

  const std::string &error() const { return error_; }
  SSL *ssl() { return ssl_; }

 private:
  bool err(const char *what) {
    unsigned long e = ERR_get_error();
    error_ = std::string(what) + (e ? std::string(": ") + ERR_reason_error_string(e) : "");
    return false;
  }
  SSL_CTX *ctx_ = nullptr;
  SSL *ssl_ = nullptr;
  int fd_ = -1;
  std::string error_;
};

// OPTIONS answers with what the handler saw of the connection's TLS.
int options_handler(icap_request *req, void *) {
  icap_request_set_icap_header(req, "X-TLS", icap_request_is_tls(req) ? "yes" : "no");
  const std::pair<const char *, const char *> seen[] = {
      {"X-TLS-Version", icap_request_tls_version(req)},
      {"X-TLS-Cipher", icap_request_tls_cipher(req)},
      {"X-TLS-Subject", icap_request_tls_peer_subject(req)}};
  for (const auto &h : seen)
    if (*h.second) icap_request_set_icap_header(req, h.first, h.second);
  return icap_request_send_headers(req, 0);
}

struct Cfg {
  icap_tls_config *cfg = nullptr;
  Cfg(const char *cert = "server.pem", const char *key = "server.key") {
    EXPECT_EQ(icap_tls_config_new(&cfg), 0);
    EXPECT_EQ(use(cert, key), 0);
  }
  ~Cfg() { icap_tls_config_free(cfg); }
  // Sets the certificate and key files (both calls are made): 0, or the
  // first failing call's code.
  int use(const std::string &cert, const std::string &key) {
    int rc = icap_tls_config_set_cert_file(cfg, cert_path(cert).c_str());
    int key_rc = icap_tls_config_set_key_file(cfg, cert_path(key).c_str(), nullptr);
    return rc ? rc : key_rc;
  }
  std::string error() {
    char buf[512];
    icap_tls_config_error(cfg, buf, sizeof buf);
    return buf;
  }
};

// A server with the "svc" service, a TLS listener (port()) and a plain one.
struct TlsServer {
  itest::TestServer server;
  int tls_port = 0, plain_port = 0;
  bool start(icap_tls_config *cfg, unsigned workers = 2) {
    server.set_workers(workers);
    icap_service *svc = server.add_service("svc");
    icap_service_set_handler(svc, ICAP_METHOD_OPTIONS, options_handler, nullptr);
    int rc = icap_server_listen_tls(server.srv(), "127.0.0.1", 0, cfg);
    if (rc != 0) {
      ADD_FAILURE() << "icap_server_listen_tls: " << icap_strerror(rc);
      return false;
    }
    if (!server.start()) return false;
    tls_port = icap_server_port(server.srv(), 0);
    plain_port = icap_server_port(server.srv(), 1);
    return tls_port > 0 && plain_port > 0;
  }
  // Waits (bounded) until a log line contains `text`.
  bool logged(const std::string &text) {
    for (int i = 0; i < 200; i++) {
      if (server.logs_text().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(ms(25));
    }
    return false;
  }
};

// Every test of the suite: certificates (or the test is skipped), a
// configuration `c` with the server's pair and a server `s`, which start()
// starts once the test has configured both.
class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_CERTS();
    c.emplace();
  }
  bool start(unsigned workers = 2) { return s.start(c->cfg, workers); }
  // Asks for client certificates (`mode`) checked against ca.pem.
  int verify_clients(icap_tls_verify mode) {
    return icap_tls_config_set_verify_client(c->cfg, mode, cert_path("ca.pem").c_str(), nullptr);
  }
  // A plain TCP client on the TLS port sends `bytes` (when there are any):
  // success when the server then closes that connection within 10 s.
  ::testing::AssertionResult plain_client_closed(const std::string &bytes) {
    itest::Client plain;
    if (plain.connect(s.tls_port) != 0) return ::testing::AssertionFailure() << "connect failed";
    if (!bytes.empty() && !plain.send_all(bytes))
      return ::testing::AssertionFailure() << "send failed";
    if (!plain.wait_closed(ms(10000))) return ::testing::AssertionFailure() << "not closed";
    return ::testing::AssertionSuccess();
  }

  std::optional<Cfg> c;
  TlsServer s;
  std::string head;  // an OPTIONS answer's head
};

TEST_F(Tls, OptionsOverTlsAndPlainSideBySide) {
  ASSERT_TRUE(start());
  TlsClient t;
  ASSERT_TRUE(t.connect(s.tls_port)) << t.error();
  ASSERT_TRUE(t.options("svc", &head)) << t.error();
  EXPECT_EQ(head.rfind("ICAP/1.0 200", 0), 0u) << head;
  EXPECT_NE(head.find("X-TLS: yes"), std::string::npos) << head;
  EXPECT_NE(head.find("X-TLS-Version: TLSv1.3"), std::string::npos) << head;
  EXPECT_NE(head.find("X-TLS-Cipher: TLS_"), std::string::npos) << head;
  EXPECT_EQ(head.find("X-TLS-Subject"), std::string::npos) << head;
  // Keep-alive: a second request on the same TLS connection.
  ASSERT_TRUE(t.options("svc", &head)) << t.error();
  EXPECT_EQ(head.rfind("ICAP/1.0 200", 0), 0u);

  itest::Client plain;
  ASSERT_EQ(plain.connect(s.plain_port), 0);
  ASSERT_TRUE(plain.send_all(kOptionsSvc));
  itest::Response r = plain.read_response();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.value("X-TLS", ""), "no");
}

TEST_F(Tls, CleanCloseSendsCloseNotify) {
  ASSERT_TRUE(start());
  TlsClient t;
  ASSERT_TRUE(t.connect(s.tls_port)) << t.error();
  std::string req = "OPTIONS icap://127.0.0.1/svc ICAP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_GT(SSL_write(t.ssl(), req.data(), static_cast<int>(req.size())), 0);
  std::string got;
  char buf[4096];
  int n;
  while ((n = SSL_read(t.ssl(), buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(got.rfind("ICAP/1.0 200", 0), 0u) << got;
  EXPECT_EQ(SSL_get_error(t.ssl(), n), SSL_ERROR_ZERO_RETURN) << "no close_notify";
}

TEST_F(Tls, MutualTlsAcceptsTheRightCertificateAndShowsItsSubject) {
  ASSERT_EQ(verify_clients(ICAP_TLS_VERIFY_REQUIRED), 0);
  ASSERT_TRUE(start());
  TlsClient t({true, "client.pem", "client.key"});
  ASSERT_TRUE(t.connect(s.tls_port)) << t.error();
  ASSERT_TRUE(t.options("svc", &head)) << t.error() << s.server.logs_text();
  EXPECT_NE(head.find("X-TLS-Subject: O=libicap test,CN=proxy1"), std::string::npos) << head;
}

struct Refusal {
  const char *name;
  const char *cert, *key;
  const char *reason;  // in the server's log line
};

class TlsRefusal : public Tls, public ::testing::WithParamInterface<Refusal> {};

TEST_P(TlsRefusal, ClosesThatConnectionWithTheReasonAndServesOthers) {
  const Refusal &p = GetParam();
  ASSERT_EQ(verify_clients(ICAP_TLS_VERIFY_REQUIRED), 0);
  ASSERT_TRUE(start());
  // A good client is connected before and stays usable after.
  TlsClient good({true, "client.pem", "client.key"});
  ASSERT_TRUE(good.connect(s.tls_port)) << good.error();
  ASSERT_TRUE(good.options("svc", &head));

  TlsClient bad({true, p.cert ? p.cert : "", p.key ? p.key : ""});
  EXPECT_TRUE(bad.refused_on(s.tls_port));
  EXPECT_TRUE(s.logged(p.reason)) << s.server.logs_text();
  EXPECT_TRUE(s.logged("TLS connection from 127.0.0.1:")) << s.server.logs_text();
  ASSERT_TRUE(good.options("svc", &head)) << good.error();
  EXPECT_EQ(head.rfind("ICAP/1.0 200", 0), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Certificates, TlsRefusal,
    ::testing::Values(Refusal{"NoClientCertificate", nullptr, nullptr, "certificate"},
                      Refusal{"WrongCa", "client-other.pem", "client-other.key",
                              "certificate refused: unable to get local issuer certificate"},
                      Refusal{"Expired", "client-expired.pem", "client-expired.key",
                              "certificate refused: certificate has expired"}),
    [](const ::testing::TestParamInfo<Refusal> &i) { return std::string(i.param.name); });

TEST_F(Tls, OptionalVerificationLetsAClientWithoutCertificateIn) {
  ASSERT_EQ(verify_clients(ICAP_TLS_VERIFY_OPTIONAL), 0);
  ASSERT_TRUE(start());
  TlsClient t;
  ASSERT_TRUE(t.connect(s.tls_port)) << t.error();
  ASSERT_TRUE(t.options("svc", &head)) << t.error();
  EXPECT_EQ(head.find("X-TLS-Subject"), std::string::npos);
  TlsClient wrong({true, "client-other.pem", "client-other.key"});
  EXPECT_TRUE(wrong.refused_on(s.tls_port));
  EXPECT_TRUE(s.logged("unable to get local issuer certificate")) << s.server.logs_text();
}

TEST_F(Tls, PlainIcapOnTheTlsPortIsClosedWithAReason) {
  ASSERT_TRUE(start());
  EXPECT_TRUE(plain_client_closed(kOptionsSvc));
  EXPECT_TRUE(s.logged("plain text to a TLS port")) << s.server.logs_text();
  TlsClient t;
  ASSERT_TRUE(t.connect(s.tls_port)) << t.error();
}

TEST_F(Tls, StalledHandshakeEndsAtTheReadTimeout) {
  s.server.set_limit(ICAP_LIMIT_READ_TIMEOUT_MS, 300);
  ASSERT_TRUE(start());
  // The start of a ClientHello record, then nothing.
  EXPECT_TRUE(plain_client_closed(std::string("\x16\x03\x01\x01\x00\x01", 6)));
  EXPECT_TRUE(s.logged("handshake not completed within 300 ms")) << s.server.logs_text();
  // A client that connects and sends nothing at all is bounded the same way.
  EXPECT_TRUE(plain_client_closed(""));
}

TEST_F(Tls, BadFilesFailListenWithAReason) {
  struct BadPair {
    const char *cert, *key;
    const char *reason;  // in the configuration's error
  };
  for (const BadPair &b : {BadPair{"missing.pem", "server.key", "missing.pem"},
                           BadPair{"server.pem", "server2.key", "key values mismatch"}}) {
    SCOPED_TRACE(std::string(b.cert) + " " + b.key);
    Cfg bad(b.cert, b.key);
    itest::TestServer srv;
    EXPECT_EQ(icap_server_listen_tls(srv.srv(), "127.0.0.1", 0, bad.cfg), ICAP_EINVAL);
    EXPECT_NE(bad.error().find(b.reason), std::string::npos) << bad.error();
  }
  {
    Cfg expired("server-expired.pem", "server-expired.key");
    EXPECT_EQ(icap_tls_config_reload(expired.cfg), ICAP_EINVAL);
    EXPECT_NE(expired.error().find("has expired"), std::string::npos) << expired.error();
  }
  EXPECT_EQ(icap_tls_config_set_ciphers(c->cfg, "NO-SUCH-CIPHER", nullptr), 0);
  EXPECT_EQ(icap_tls_config_reload(c->cfg), ICAP_EINVAL);
  EXPECT_NE(c->error().find("cipher list"), std::string::npos) << c->error();
  EXPECT_EQ(icap_tls_config_set_verify_client(c->cfg, ICAP_TLS_VERIFY_REQUIRED, nullptr, nullptr),
            ICAP_EINVAL);
}

TEST_F(Tls, MinimumVersionIsEnforced) {
  ASSERT_EQ(icap_tls_config_set_min_version(c->cfg, ICAP_TLS_1_3), 0);
  ASSERT_TRUE(start());
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  SSL *ssl = SSL_new(ctx);
  int fd = TlsClient::tcp_connect(s.tls_port);
  ASSERT_GE(fd, 0);
  SSL_set_fd(ssl, fd);
  EXPECT_NE(SSL_connect(ssl), 1);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  EXPECT_TRUE(s.logged("unsupported protocol")) << s.server.logs_text();
}

TEST_F(Tls, ReloadChangesNewHandshakesOnlyAndAFailedReloadChangesNothing) {
  ASSERT_TRUE(start());
  TlsClient before;
  ASSERT_TRUE(before.connect(s.tls_port)) << before.error();
  std::string old_serial = before.server_serial();

  ASSERT_EQ(c->use("server2.pem", "server2.key"), 0);
  ASSERT_EQ(icap_tls_config_reload(c->cfg), 0) << c->error();
  TlsClient after;
  ASSERT_TRUE(after.connect(s.tls_port)) << after.error();
  EXPECT_NE(after.server_serial(), old_serial);
  ASSERT_TRUE(before.options("svc", &head)) << before.error();  // still served
  EXPECT_EQ(before.server_serial(), old_serial);

  // A reload that fails keeps the pair in use.
  ASSERT_EQ(icap_tls_config_set_cert_file(c->cfg, cert_path("missing.pem").c_str()), 0);
  EXPECT_EQ(icap_tls_config_reload(c->cfg), ICAP_EINVAL);
  TlsClient third;
  ASSERT_TRUE(third.connect(s.tls_port)) << third.error();
  EXPECT_EQ(third.server_serial(), after.server_serial());
}

// Clients on several threads, each doing new connections and keep-alive
// requests, while the main thread reloads the pair again and again: no
// transaction fails. Also the multi-worker TLS test for TSan.
TEST_F(Tls, ReloadUnderLoadWithSeveralWorkersFailsNoTransaction) {
  ASSERT_TRUE(start(4));
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  constexpr int kThreads = 6, kConnections = 15, kRequests = 3;
  for (int t = 0; t < kThreads; t++) {
    clients.emplace_back([&] {
      for (int i = 0; i < kConnections; i++) {
        TlsClient cl;
        if (!cl.connect(s.tls_port)) {
          failed++;
          continue;
        }
        for (int r = 0; r < kRequests; r++) {
          std::string answer;
          if (cl.options("svc", &answer) && answer.rfind("ICAP/1.0 200", 0) == 0)
            ok++;
          else
            failed++;
        }
      }
    });
  }
  for (int i = 0; i < 20; i++) {
    std::string name = i % 2 ? "server" : "server2";
    c->use(name + ".pem", name + ".key");
    EXPECT_EQ(icap_tls_config_reload(c->cfg), 0) << c->error();
    std::this_thread::sleep_for(ms(20));
  }
  for (auto &t : clients) t.join();
  EXPECT_EQ(failed.load(), 0) << s.server.logs_text();
  EXPECT_EQ(ok.load(), kThreads * kConnections * kRequests);
}

}  // namespace

#include <icap/icap.hpp>

namespace {

TEST(TlsCpp, WrapperListensAndReportsReasons) {
  REQUIRE_CERTS();
  icap::TlsConfig bad;
  bad.cert_file(cert_path("missing.pem")).key_file(cert_path("server.key"));
  icap::Server srv;
  try {
    srv.listen_tls("127.0.0.1", 0, bad);
    ADD_FAILURE() << "listen_tls did not throw";
  } catch (const icap::Error &e) {
    EXPECT_EQ(e.code(), ICAP_EINVAL);
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
  icap::TlsConfig good;
  good.cert_file(cert_path("server.pem"))
      .key_file(cert_path("server.key"))
      .min_version(ICAP_TLS_1_2)
      .verify_client(ICAP_TLS_VERIFY_OPTIONAL, cert_path("ca.pem").c_str());
  srv.listen_tls("127.0.0.1", 0, good);
  EXPECT_GT(srv.port(0), 0);
  EXPECT_EQ(good.error(), "");
  good.cert_file(cert_path("missing.pem"));
  EXPECT_THROW(good.reload(), icap::Error);
  EXPECT_NE(good.error().find("missing.pem"), std::string::npos);
}

}  // namespace
