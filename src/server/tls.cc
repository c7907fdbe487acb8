// SPDX-License-Identifier: MIT
#include "server/tls.hpp"

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <climits>
#include <new>

namespace icap::detail {

namespace {

// A memory BIO keeps the largest size it ever held. One that held a 64 KiB
// read and is now empty is replaced, so an idle connection keeps only a few
// KiB (its SSL object) whatever it carried before.
constexpr size_t kShrinkAbove = 16 * 1024;

BIO *new_mem_bio() {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) throw std::bad_alloc();
  // An empty BIO means "wait for more", not end of file.
  BIO_set_mem_eof_return(b, -1);
  return b;
}

// OpenSSL's error queue is per thread; what a failed call left there is
// turned into words and cleared, so the next connection on this thread
// does not see it.
std::string drain_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    const char *reason = ERR_reason_error_string(e);
    out += reason ? reason : buf;
  }
  return out;
}

}  // namespace

TlsTransport::TlsTransport(SSL_CTX *ctx, bool server) {
  ssl_ = SSL_new(ctx);
  if (!ssl_) throw std::bad_alloc();
  try {
    rbio_ = new_mem_bio();
    wbio_ = new_mem_bio();
  } catch (...) {
    BIO_free(rbio_);
    SSL_free(ssl_);
    throw;
  }
  SSL_set_bio(ssl_, rbio_, wbio_);  // the SSL object owns both BIOs now
  if (server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

void TlsTransport::fail(int ssl_error, const char *what) {
  state_ = State::kFailed;
  std::string errs = drain_errors();
  long verify = SSL_get_verify_result(ssl_);
  reason_ = what;
  if (verify != X509_V_OK) {
    reason_ += ": certificate refused: ";
    reason_ += X509_verify_cert_error_string(verify);
  } else if (!errs.empty()) {
    reason_ += ": " + errs;
  } else if (ssl_error == SSL_ERROR_SYSCALL) {
    reason_ += ": unexpected end of the TLS stream";
  } else {
    reason_ += ": SSL error " + std::to_string(ssl_error);
  }
}

void TlsTransport::on_established() {
  state_ = State::kOpen;
  version_ = SSL_get_version(ssl_);
  const SSL_CIPHER *c = SSL_get_current_cipher(ssl_);
  cipher_ = c ? SSL_CIPHER_get_name(c) : "";
  X509 *peer = SSL_get0_peer_certificate(ssl_);
  if (peer && SSL_get_verify_result(ssl_) == X509_V_OK) {
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) throw std::bad_alloc();
    X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char *p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    peer_subject_.assign(p ? p : "", n > 0 ? static_cast<size_t>(n) : 0);
    BIO_free(b);
  }
}

void TlsTransport::advance() {
  if (state_ != State::kHandshake) return;
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    on_established();
    return;
  }
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
  fail(e, "TLS handshake failed");
}

bool TlsTransport::feed(const char *p, size_t n) {
  if (state_ == State::kFailed) return false;
  if (state_ == State::kClosed || n == 0) return true;
  // A TLS connection starts with a handshake record (content type 22). Plain
  // ICAP ("OPTIONS icap://...") on a TLS port is told apart at its first
  // byte, so the log can say what happened instead of OpenSSL's guess.
  if (state_ == State::kHandshake && SSL_is_server(ssl_) && BIO_ctrl_pending(rbio_) == 0 &&
      SSL_in_before(ssl_) && static_cast<unsigned char>(p[0]) != 0x16) {
    state_ = State::kFailed;
    reason_ =
        "not a TLS handshake: the client sent plain text to a TLS port (it probably wants "
        "icap://, not icaps://)";
    return false;
  }
  while (n > 0) {
    int chunk = n > INT_MAX ? INT_MAX : static_cast<int>(n);
    int w = BIO_write(rbio_, p, chunk);
    if (w <= 0) throw std::bad_alloc();
    p += w;
    n -= static_cast<size_t>(w);
  }
  advance();
  return state_ != State::kFailed;
}

size_t TlsTransport::read(char *buf, size_t cap) {
  advance();
  if (state_ != State::kOpen || cap == 0) return 0;
  ERR_clear_error();
  int r = SSL_read(ssl_, buf, cap > INT_MAX ? INT_MAX : static_cast<int>(cap));
  if (r > 0) return static_cast<size_t>(r);
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    shrink_if_idle(rbio_, true);
  } else if (e == SSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    state_ = State::kClosed;
  } else {
    fail(e, "TLS read failed");
  }
  return 0;
}

bool TlsTransport::write(const char *p, size_t n) {
  if (state_ != State::kOpen) return false;
  while (n > 0) {
    ERR_clear_error();
    int chunk = n > INT_MAX ? INT_MAX : static_cast<int>(n);
    int w = SSL_write(ssl_, p, chunk);
    if (w <= 0) {
      fail(SSL_get_error(ssl_, w), "TLS write failed");
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

size_t TlsTransport::pending() const { return BIO_ctrl_pending(wbio_); }

size_t TlsTransport::take(std::string &out) {
  size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) return 0;
  size_t old = out.size();
  out.resize(old + n);
  int r = BIO_read(wbio_, &out[old], static_cast<int>(n));
  out.resize(old + (r > 0 ? static_cast<size_t>(r) : 0));
  shrink_if_idle(wbio_, false);
  return out.size() - old;
}

void TlsTransport::close_notify() {
  if (notify_sent_ || !established()) return;
  notify_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // writes close_notify into wbio_; the peer's is not awaited
  ERR_clear_error();
  state_ = State::kClosed;
}

void TlsTransport::shrink_if_idle(BIO *&bio, bool read_side) {
  if (BIO_ctrl_pending(bio) != 0) return;
  BUF_MEM *mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  if (!mem || mem->max <= kShrinkAbove) return;
  BIO *fresh = new_mem_bio();
  // set0 frees the old BIO (the SSL object owned it).
  if (read_side)
    SSL_set0_rbio(ssl_, fresh);
  else
    SSL_set0_wbio(ssl_, fresh);
  bio = fresh;
}

}  // namespace icap::detail
