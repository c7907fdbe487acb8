// SPDX-License-Identifier: MIT
#include "server/tls_config.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>

namespace {

std::string openssl_reason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char *r = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += r ? r : "unknown OpenSSL error";
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

int passphrase_cb(char *buf, int size, int, void *user) {
  const std::string *p = static_cast<const std::string *>(user);
  if (!p || p->empty() || size <= 0) return 0;
  int n = static_cast<int>(p->size()) < size ? static_cast<int>(p->size()) : size;
  memcpy(buf, p->data(), static_cast<size_t>(n));
  return n;
}

// The context the settings describe, or null with `err` set. Called with
// the config's lock held (it reads the settings and the files).
SSL_CTX *build_ctx(icap_tls_config &c, std::string &err) {
  ERR_clear_error();
  if (c.cert_file.empty() || c.key_file.empty()) {
    err = "a certificate file and a key file are required";
    return nullptr;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    err = "cannot create a TLS context: " + openssl_reason();
    return nullptr;
  }
  auto fail = [&](const std::string &what) -> SSL_CTX * {
    err = what + ": " + openssl_reason();
    SSL_CTX_free(ctx);
    return nullptr;
  };
  if (!SSL_CTX_set_min_proto_version(ctx, c.min_version))
    return fail("unsupported minimum TLS version");
  // Renegotiation lets a client make the server redo expensive handshakes
  // on a connection at will (and has a history of attacks): off.
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections give their read/write buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kSidCtx[] = "libicap";
  SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
  if (c.has_ciphers && !SSL_CTX_set_cipher_list(ctx, c.ciphers.c_str()))
    return fail("bad TLS 1.2 cipher list '" + c.ciphers + "'");
  if (c.has_ciphersuites && !SSL_CTX_set_ciphersuites(ctx, c.ciphersuites.c_str()))
    return fail("bad TLS 1.3 cipher suites '" + c.ciphersuites + "'");
  SSL_CTX_set_default_passwd_cb(ctx, passphrase_cb);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &c.passphrase);
  if (SSL_CTX_use_certificate_chain_file(ctx, c.cert_file.c_str()) != 1)
    return fail("cannot load the certificate chain " + c.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("cannot load the private key " + c.key_file);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("the private key " + c.key_file + " does not match the certificate");
  // The passphrase is needed only while the key is read.
  SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
  // Serving an expired certificate fails every verifying client; refusing
  // it here keeps a reload from replacing a good pair with a dead one.
  if (X509 *leaf = SSL_CTX_get0_certificate(ctx)) {
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
      err = "the certificate " + c.cert_file + " has expired";
      SSL_CTX_free(ctx);
      return nullptr;
    }
  }
  if (c.verify != ICAP_TLS_VERIFY_NONE) {
    if (c.ca_file.empty() && c.ca_dir.empty()) {
      err = "client certificate verification needs a CA file or directory";
      SSL_CTX_free(ctx);
      return nullptr;
    }
    if (SSL_CTX_load_verify_locations(ctx, c.ca_file.empty() ? nullptr : c.ca_file.c_str(),
                                      c.ca_dir.empty() ? nullptr : c.ca_dir.c_str()) != 1)
      return fail("cannot load the client CA " + (c.ca_file.empty() ? c.ca_dir : c.ca_file));
    // Tell clients which CAs are accepted, so one with several certificates
    // picks the right one.
    if (!c.ca_file.empty()) {
      if (STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c.ca_file.c_str()))
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    int mode = SSL_VERIFY_PEER;
    if (c.verify == ICAP_TLS_VERIFY_REQUIRED) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
  }
  ERR_clear_error();
  return ctx;
}

}  // namespace

icap_tls_config::~icap_tls_config() { SSL_CTX_free(ctx); }

int icap_tls_config::reload() {
  std::unique_lock<std::mutex> g(mu);
  std::string err;
  SSL_CTX *fresh = build_ctx(*this, err);
  if (!fresh) {
    last_error = err;
    return ICAP_EINVAL;
  }
  SSL_CTX *old = ctx;
  ctx = fresh;
  last_error.clear();
  g.unlock();
  // Connections that started on the old context hold their own reference.
  SSL_CTX_free(old);
  return 0;
}

SSL_CTX *icap_tls_config::acquire() {
  std::lock_guard<std::mutex> g(mu);
  if (ctx) SSL_CTX_up_ref(ctx);
  return ctx;
}

std::string icap_tls_config::error() {
  std::lock_guard<std::mutex> g(mu);
  return last_error;
}
