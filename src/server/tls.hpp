// SPDX-License-Identifier: MIT
// A TLS transport over memory BIOs: ciphertext in, plaintext out; plaintext
// in, ciphertext out. It does no I/O of its own, so the libuv connection
// drives it (and the unit tests drive two of them against each other) and
// every call returns at once.
#ifndef ICAP_SERVER_TLS_HPP
#define ICAP_SERVER_TLS_HPP

#include <openssl/ssl.h>

#include <cstddef>
#include <string>

namespace icap::detail {

class TlsTransport {
 public:
  // kHandshake until the handshake completes; kOpen while application data
  // flows; kClosed once the peer's close_notify arrived or ours was sent;
  // kFailed after a fatal error (reason() says why).
  enum class State { kHandshake, kOpen, kClosed, kFailed };

  // An endpoint on `ctx` (which it references for its whole life, so a
  // reload that replaces the context leaves this connection on the old
  // one). Throws std::bad_alloc when OpenSSL cannot allocate.
  TlsTransport(SSL_CTX *ctx, bool server);
  ~TlsTransport();
  TlsTransport(const TlsTransport &) = delete;
  TlsTransport &operator=(const TlsTransport &) = delete;

  // Ciphertext received from the peer; copied. Runs the handshake as far as
  // the bytes allow. Returns false once the transport failed.
  bool feed(const char *p, size_t n);
  // Up to `cap` decrypted bytes into `buf`; 0 when none are ready now (or
  // the transport closed or failed).
  size_t read(char *buf, size_t cap);
  // Encrypts `n` plaintext bytes (all of them; the ciphertext waits in
  // pending()). Returns false when the transport is not open.
  bool write(const char *p, size_t n);
  // Ciphertext that must be sent to the peer (handshake messages, records,
  // alerts, close_notify), appended to `out`. Returns the bytes appended.
  size_t take(std::string &out);
  size_t pending() const;
  // Queues close_notify (once, if the handshake completed).
  void close_notify();

  State state() const { return state_; }
  bool established() const { return state_ == State::kOpen || state_ == State::kClosed; }
  bool peer_closed() const { return peer_closed_; }
  // Why the transport failed, in words (OpenSSL's reason and, for a refused
  // certificate, the verification error); "" otherwise.
  const std::string &reason() const { return reason_; }
  // After the handshake: "TLSv1.3", the cipher suite name, and the verified
  // peer certificate's subject as a one-line RFC 2253 string ("" without one).
  const std::string &version() const { return version_; }
  const std::string &cipher() const { return cipher_; }
  const std::string &peer_subject() const { return peer_subject_; }

 private:
  void advance();
  void fail(int ssl_error, const char *what);
  void on_established();
  void shrink_if_idle(BIO *&bio, bool read_side);

  SSL *ssl_ = nullptr;
  BIO *rbio_ = nullptr;  // ciphertext from the peer, read by OpenSSL
  BIO *wbio_ = nullptr;  // ciphertext OpenSSL wrote for the peer
  State state_ = State::kHandshake;
  bool peer_closed_ = false;
  bool notify_sent_ = false;
  std::string reason_, version_, cipher_, peer_subject_;
};

}  // namespace icap::detail

#endif
