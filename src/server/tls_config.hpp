// SPDX-License-Identifier: MIT
// icap_tls_config: the settings of a TLS listener and the OpenSSL context
// built from them. The context is rebuilt on reload and swapped under a
// lock; each connection references the context it started on, so a reload
// changes what new handshakes use and leaves open connections alone.
#ifndef ICAP_SERVER_TLS_CONFIG_HPP
#define ICAP_SERVER_TLS_CONFIG_HPP

#include <openssl/ssl.h>

#include <atomic>
#include <mutex>
#include <string>

#include "icap/icap.h"

struct icap_tls_config {
  icap_tls_config() = default;
  ~icap_tls_config();
  icap_tls_config(const icap_tls_config &) = delete;
  icap_tls_config &operator=(const icap_tls_config &) = delete;

  // References: the caller's handle and one per listener that uses it.
  void ref() { refs.fetch_add(1); }
  void unref() {
    if (refs.fetch_sub(1) == 1) delete this;
  }

  // Builds a context from the current settings (reading the files now) and,
  // on success, makes it the one new handshakes use. On failure the old
  // context stays and error() says why. Returns 0 or ICAP_EINVAL.
  int reload();
  // The context for a new handshake, with a reference the caller releases
  // with SSL_CTX_free(); null if none was built yet.
  SSL_CTX *acquire();
  // A copy of the last reload's error ("" after a success).
  std::string error();

  std::mutex mu;  // guards everything below
  std::string cert_file, key_file, passphrase;
  int min_version = ICAP_TLS_1_2;
  std::string ciphers, ciphersuites;
  bool has_ciphers = false, has_ciphersuites = false;
  icap_tls_verify verify = ICAP_TLS_VERIFY_NONE;
  std::string ca_file, ca_dir;
  SSL_CTX *ctx = nullptr;
  std::string last_error;

 private:
  std::atomic<int> refs{1};
};

#endif
