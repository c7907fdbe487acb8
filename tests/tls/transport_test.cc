// SPDX-License-Identifier: MIT
// The memory-BIO TLS transport on its own: two instances, a server and a
// client, talk to each other in memory, with the ciphertext between them
// delivered whole, split at every byte position, and byte by byte.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "server/tls.hpp"
#include "server/tls_config.hpp"

using icap::detail::TlsTransport;

namespace {

// A self-signed EC certificate made in memory for each test run.
struct Identity {
  EVP_PKEY *key = nullptr;
  X509 *cert = nullptr;
  Identity() {
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME *n = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char *>("unit"), -1, -1, 0);
    X509_set_issuer_name(cert, n);
    X509_sign(cert, key, EVP_sha256());
  }
  ~Identity() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

const Identity &identity() {
  static Identity id;
  return id;
}

SSL_CTX *server_ctx(int max_version = 0) {
  SSL_CTX *c = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(c, identity().cert);
  SSL_CTX_use_PrivateKey(c, identity().key);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
  if (max_version) SSL_CTX_set_max_proto_version(c, max_version);
  return c;
}

SSL_CTX *client_ctx() {
  SSL_CTX *c = SSL_CTX_new(TLS_client_method());
  X509_STORE_add_cert(SSL_CTX_get_cert_store(c), identity().cert);
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  return c;
}

struct Pair {
  SSL_CTX *sctx, *cctx;
  TlsTransport server, client;
  std::string server_got, client_got;
  explicit Pair(int max_version = 0)
      : sctx(server_ctx(max_version)),
        cctx(client_ctx()),
        server(sctx, true),
        client(cctx, false) {}
  ~Pair() {
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
  }

  // Delivers what `from` has pending to `to`, cut at `split` (0: whole;
  // 1: byte by byte when `bytewise`), then reads all plaintext `to` has.
  static bool deliver(TlsTransport &from, TlsTransport &to, std::string &got, size_t split,
                      bool bytewise, size_t *moved) {
    std::string ct;
    from.take(ct);
    *moved += ct.size();
    bool ok = true;
    if (bytewise) {
      for (size_t i = 0; i < ct.size() && ok; i++) ok = to.feed(&ct[i], 1);
    } else if (split > 0 && split < ct.size()) {
      ok = to.feed(ct.data(), split) && to.feed(ct.data() + split, ct.size() - split);
    } else {
      ok = to.feed(ct.data(), ct.size());
    }
    char buf[4096];
    while (size_t n = to.read(buf, sizeof buf)) got.append(buf, n);
    return ok && to.state() != TlsTransport::State::kFailed;
  }

  // Runs both directions until nothing moves (bounded).
  bool pump(size_t split = 0, bool bytewise = false) {
    for (int round = 0; round < 100; round++) {
      size_t moved = 0;
      if (!deliver(client, server, server_got, split, bytewise, &moved)) return false;
      if (!deliver(server, client, client_got, split, bytewise, &moved)) return false;
      if (moved == 0) return true;
    }
    return false;
  }

  bool handshake(size_t split = 0, bool bytewise = false) {
    client.read(nullptr, 0);  // the client speaks first: its ClientHello
    return pump(split, bytewise) && server.established() && client.established();
  }
};

TEST(TlsTransport, HandshakeThenDataBothWays) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  EXPECT_EQ(p.server.version(), "TLSv1.3");
  EXPECT_FALSE(p.server.cipher().empty());
  EXPECT_EQ(p.server.peer_subject(), "");  // no client certificate
  EXPECT_EQ(p.client.peer_subject(), "CN=unit");
  const std::string req = "OPTIONS icap://x/echo ICAP/1.0\r\n\r\n";
  ASSERT_TRUE(p.client.write(req.data(), req.size()));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.server_got, req);
  ASSERT_TRUE(p.server.write("ICAP/1.0 200 OK\r\n\r\n", 19));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.client_got, "ICAP/1.0 200 OK\r\n\r\n");
}

TEST(TlsTransport, Tls12HandshakeWorksToo) {
  Pair p(TLS1_2_VERSION);
  ASSERT_TRUE(p.handshake());
  EXPECT_EQ(p.server.version(), "TLSv1.2");
  ASSERT_TRUE(p.client.write("abc", 3));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.server_got, "abc");
}

// Every flight of the handshake and a small record, cut in two at every
// byte position: the transport must wait for the rest, never fail.
TEST(TlsTransport, SplitAtEveryBytePosition) {
  size_t longest = 0;
  {
    Pair probe;
    probe.client.read(nullptr, 0);
    longest = probe.client.pending();
    ASSERT_TRUE(probe.client.feed("", 0));
  }
  // The server's first flight (certificate) is the longest; cover it too.
  size_t limit = longest + 1200;
  for (size_t split = 1; split < limit; split++) {
    Pair p;
    ASSERT_TRUE(p.handshake(split))
        << "split " << split << ": " << p.server.reason() << " / " << p.client.reason();
    ASSERT_TRUE(p.client.write("REQMOD", 6));
    ASSERT_TRUE(p.pump(split % 40 + 1));
    ASSERT_EQ(p.server_got, "REQMOD") << "split " << split;
  }
}

TEST(TlsTransport, ByteByByte) {
  Pair p;
  ASSERT_TRUE(p.handshake(0, true)) << p.server.reason() << " / " << p.client.reason();
  std::string msg(3000, 'x');
  ASSERT_TRUE(p.client.write(msg.data(), msg.size()));
  ASSERT_TRUE(p.pump(0, true));
  EXPECT_EQ(p.server_got, msg);
}

TEST(TlsTransport, OneMebibyteIntactBothWays) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i * 131 + (i >> 9));
  ASSERT_TRUE(p.client.write(big.data(), big.size()));
  ASSERT_TRUE(p.server.write(big.data(), big.size()));
  ASSERT_TRUE(p.pump());
  EXPECT_TRUE(p.server_got == big);
  EXPECT_TRUE(p.client_got == big);
  EXPECT_EQ(p.server.pending(), 0u);
}

TEST(TlsTransport, PlainTextOnTlsFailsWithAReason) {
  Pair p;
  EXPECT_FALSE(p.server.feed("OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\n", 40));
  EXPECT_EQ(p.server.state(), TlsTransport::State::kFailed);
  EXPECT_NE(p.server.reason().find("plain text"), std::string::npos) << p.server.reason();
  EXPECT_FALSE(p.server.write("x", 1));
}

TEST(TlsTransport, GarbageHandshakeRecordFailsWithOpenSslReason) {
  Pair p;
  // A handshake record header, then a body that is no ClientHello.
  std::string junk("\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff", 10);
  EXPECT_FALSE(p.server.feed(junk.data(), junk.size()));
  EXPECT_EQ(p.server.state(), TlsTransport::State::kFailed);
  EXPECT_NE(p.server.reason().find("TLS handshake failed: "), std::string::npos);
  // OpenSSL prepared an alert for the peer.
  EXPECT_GT(p.server.pending(), 0u);
}

TEST(TlsTransport, TamperedRecordAfterHandshakeFails) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.client.write("hello", 5));
  std::string ct;
  p.client.take(ct);
  ct[ct.size() - 1] ^= 1;  // breaks the record's authentication tag
  p.server.feed(ct.data(), ct.size());
  char buf[64];
  EXPECT_EQ(p.server.read(buf, sizeof buf), 0u);
  EXPECT_EQ(p.server.state(), TlsTransport::State::kFailed);
  EXPECT_NE(p.server.reason().find("TLS read failed"), std::string::npos) << p.server.reason();
}

TEST(TlsTransport, CloseNotifyReachesThePeer) {
  Pair p;
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.server.write("bye", 3));
  p.server.close_notify();
  EXPECT_EQ(p.server.state(), TlsTransport::State::kClosed);
  EXPECT_FALSE(p.server.write("more", 4));
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.client_got, "bye");
  EXPECT_TRUE(p.client.peer_closed());
  EXPECT_EQ(p.client.state(), TlsTransport::State::kClosed);
}

TEST(TlsTransport, CloseNotifyBeforeHandshakeSendsNothing) {
  Pair p;
  p.server.close_notify();
  EXPECT_EQ(p.server.pending(), 0u);
  EXPECT_EQ(p.server.state(), TlsTransport::State::kHandshake);
}

// The context libicap builds (icap_tls_config) refuses renegotiation: a
// TLS 1.2 client that asks for one is told no.
TEST(TlsTransport, LibicapContextRefusesRenegotiation) {
  char dir[] = "/tmp/tls-unit-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string cert = std::string(dir) + "/c.pem", key = std::string(dir) + "/k.pem";
  FILE *f = fopen(cert.c_str(), "w");
  PEM_write_X509(f, identity().cert);
  fclose(f);
  f = fopen(key.c_str(), "w");
  PEM_write_PrivateKey(f, identity().key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(f);
  icap_tls_config *cfg = new icap_tls_config();
  cfg->cert_file = cert;
  cfg->key_file = key;
  ASSERT_EQ(cfg->reload(), 0) << cfg->error();
  unlink(cert.c_str());
  unlink(key.c_str());
  rmdir(dir);
  SSL_CTX *sctx = cfg->acquire();
  TlsTransport server(sctx, true);
  SSL_CTX_free(sctx);
  cfg->unref();

  SSL_CTX *cctx = client_ctx();
  SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
  SSL *c = SSL_new(cctx);
  BIO *cin = BIO_new(BIO_s_mem()), *cout = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(cin, -1);
  BIO_set_mem_eof_return(cout, -1);
  SSL_set_bio(c, cin, cout);
  SSL_set_connect_state(c);
  unsigned long client_error = 0;
  auto shuttle = [&] {
    for (int i = 0; i < 20; i++) {
      char buf[16384];
      ERR_clear_error();
      if (SSL_is_init_finished(c) && !SSL_renegotiate_pending(c)) {
        if (SSL_read(c, buf, sizeof buf) <= 0 && ERR_peek_error()) client_error = ERR_get_error();
      } else if (SSL_do_handshake(c) <= 0 && ERR_peek_error()) {
        client_error = ERR_get_error();
      }
      bool moved = false;
      int n;
      while ((n = BIO_read(cout, buf, sizeof buf)) > 0) {
        server.feed(buf, static_cast<size_t>(n));
        moved = true;
      }
      server.read(buf, sizeof buf);
      std::string ct;
      server.take(ct);
      if (!ct.empty()) {
        BIO_write(cin, ct.data(), static_cast<int>(ct.size()));
        moved = true;
      }
      if (!moved) break;
    }
  };
  shuttle();
  ASSERT_TRUE(server.established()) << server.reason();
  EXPECT_EQ(server.version(), "TLSv1.2");
  ASSERT_EQ(SSL_renegotiate(c), 1);
  shuttle();
  // OpenSSL's client fails its renegotiation on the server's
  // no_renegotiation alert (and then ends the connection with an alert of
  // its own, which the server reports as a failure with that reason).
  EXPECT_EQ(ERR_GET_REASON(client_error), SSL_R_NO_RENEGOTIATION)
      << ERR_reason_error_string(client_error);
  SSL_free(c);
  SSL_CTX_free(cctx);
}

}  // namespace
