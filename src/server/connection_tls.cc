// SPDX-License-Identifier: MIT
// The TLS side of a connection: the hooks at its read and write points that
// put a TlsTransport between the socket and the unchanged ICAP session.
#include <openssl/ssl.h>

#include <new>

#include "server/connection.hpp"
#include "server/tls.hpp"
#include "server/tls_config.hpp"

namespace icap::detail {

bool Connection::attach_tls(icap_tls_config *cfg) {
  if (!cfg) return true;
  SSL_CTX *ctx = cfg->acquire();
  if (ctx) {
    try {
      tls_ = std::make_unique<TlsTransport>(ctx, true);
    } catch (const std::bad_alloc &) {
    }
    SSL_CTX_free(ctx);  // the SSL object holds its own reference
  }
  if (!tls_) {
    w_->server()->log(ICAP_LOG_ERROR, "cannot start TLS on a new connection: out of memory");
    close(ICAP_ENOMEM);
    return false;
  }
  tls_since_ = uv_now(w_->loop());
  return true;
}

bool Connection::tls_receive(const char *p, size_t n) {
  bool was_established = tls_->established();
  if (!tls_->feed(p, n)) {
    tls_fail();
    return false;
  }
  if (!was_established && tls_->established()) {
    session_log(
        ICAP_LOG_DEBUG,
        "TLS from " + peer_ + ": " + tls_->version() + " " + tls_->cipher() +
            (tls_->peer_subject().empty() ? std::string()
                                          : ", client certificate " + tls_->peer_subject()));
  }
  // feed() copied the ciphertext, so the read buffer it came in is free for
  // the plaintext.
  char *buf = w_->read_buffer();
  while (size_t got = tls_->read(buf, Worker::kReadBufferSize)) session_.feed(buf, got);
  if (tls_->state() == TlsTransport::State::kFailed) {
    tls_fail();
    return false;
  }
  if (tls_->peer_closed() && !peer_eof_) {
    // close_notify: the client is done sending, as with a FIN.
    peer_eof_ = true;
    session_.eof();
  }
  return true;
}

bool Connection::tls_seal(WriteReq *wr) {
  // The plaintext is copied into TLS records here, so borrowed segments go
  // back to their owners now; wr->bytes still counts plaintext, which is
  // what the session's backpressure accounting expects in written().
  bool ok = true;
  for (auto &s : wr->segs) {
    if (ok) ok = tls_->write(s.data(), s.size());
    s.release_now();
  }
  wr->segs.clear();
  if (!ok) {
    delete wr;
    tls_fail();
    return false;
  }
  OutSeg seg;
  tls_->take(seg.buf);
  wr->segs.push_back(std::move(seg));
  return true;
}

bool Connection::tls_send_pending() {
  // Handshake messages, session tickets, alerts: ciphertext that no session
  // output produced. It counts as no plaintext written.
  auto *wr = new WriteReq();
  wr->conn = this;
  wr->bytes = 0;
  OutSeg seg;
  tls_->take(seg.buf);
  wr->segs.push_back(std::move(seg));
  return submit(wr);
}

void Connection::tls_fail() {
  session_log(ICAP_LOG_WARN, "TLS connection from " + peer_ + " closed: " + tls_->reason());
  // The alert OpenSSL prepared tells the client why; send it if the socket
  // takes it now, without waiting.
  std::string alert;
  tls_->take(alert);
  if (!alert.empty()) {
    uv_buf_t b = uv_buf_init(alert.data(), static_cast<unsigned>(alert.size()));
    uv_try_write(reinterpret_cast<uv_stream_t *>(&tcp), &b, 1);
  }
  close(ICAP_EPROTO);
}

void Connection::tls_goodbye() {
  tls_->close_notify();
  if (!tls_->pending()) return;
  if (lingering_) {
    tls_send_pending();  // written before the FIN that follows
    return;
  }
  // Closing now: whatever the socket takes at once.
  std::string notify;
  tls_->take(notify);
  uv_buf_t b = uv_buf_init(notify.data(), static_cast<unsigned>(notify.size()));
  uv_try_write(reinterpret_cast<uv_stream_t *>(&tcp), &b, 1);
}

void Connection::tls_timed_out() {
  session_log(ICAP_LOG_WARN,
              "TLS connection from " + peer_ + " closed: handshake not completed within " +
                  std::to_string(w_->server()->limits[ICAP_LIMIT_READ_TIMEOUT_MS]) + " ms");
  close(ICAP_ETIMEDOUT);
}

}  // namespace icap::detail
