// SPDX-License-Identifier: MIT
// Persistent connections: many transactions on one connection, many
// connections at once, and pipelined requests.
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <cstring>

#include "harness.hpp"

using namespace itest;

namespace {

// Records the client port of every transaction, to prove they all came over
// one connection.
struct PortLog {
  std::mutex mu;
  std::multiset<int> ports;
  std::atomic<int> calls{0};
};

int recording_echo(icap_request *req, void *user) {
  auto *log = static_cast<PortLog *>(user);
  {
    std::lock_guard<std::mutex> g(log->mu);
    log->ports.insert(icap_request_client_port(req));
  }
  log->calls++;
  return icap_request_no_adaptation(req);
}

std::string body_for(int i) {
  std::string b(static_cast<size_t>((i * 37) % 5000 + 1), '\0');
  fill_pattern(b.data(), b.size(), 0, static_cast<uint32_t>(i));
  return b;
}

// Checks one answer of the mixed sequence (i % 3: OPTIONS, REQMOD with
// Allow: 204, RESPMOD echo without Allow: 204).
void check_mixed_answer(int i, const Response &r, const std::string &service) {
  ASSERT_TRUE(r.ok) << "transaction " << i << ": " << r.error;
  EXPECT_FALSE(r.conn_close()) << "transaction " << i << " closes the connection";
  switch (i % 3) {
    case 0:
      ASSERT_EQ(r.code, 200) << r.status_line;
      EXPECT_EQ(r.value("Methods", ""), "REQMOD, RESPMOD");
      EXPECT_EQ(r.value("Service-ID", ""), service);
      EXPECT_TRUE(r.header("ISTag") != nullptr);
      EXPECT_FALSE(r.has_body);
      break;
    case 1:
      ASSERT_EQ(r.code, 204) << r.status_line;
      EXPECT_TRUE(r.header("ISTag") != nullptr);
      EXPECT_FALSE(r.has_body);
      EXPECT_TRUE(r.http_head().empty());
      break;
    case 2: {
      ASSERT_EQ(r.code, 200) << r.status_line;
      std::string body = body_for(i);
      ASSERT_TRUE(r.has_body);
      EXPECT_EQ(r.http_head(), http_response_head(body.size()));
      EXPECT_EQ(r.encapsulated,
                "res-hdr=0, res-body=" + std::to_string(http_response_head(body.size()).size()));
      EXPECT_EQ(r.body.size(), body.size());
      EXPECT_TRUE(r.body == body) << "echoed body differs in transaction " << i;
      break;
    }
  }
}

std::string mixed_request(int i, const std::string &service) {
  switch (i % 3) {
    case 0:
      return options_request(service);
    case 1:
      return reqmod_get(service, "http://origin.example/" + std::to_string(i), "Allow: 204\r\n");
    default: {
      // Vary the chunking too: one chunk, or pieces of 1..700 bytes.
      size_t chunk = i % 2 ? 0 : static_cast<size_t>(i % 700 + 1);
      return respmod(service, body_for(i), "", chunk);
    }
  }
}

}  // namespace

// 1000 transactions on one connection, all answered correctly, none closing
// the connection, and the server saw a single client port throughout.
TEST(KeepAlive, ThousandMixedTransactionsOnOneConnection) {
  PortLog log;
  TestServer s;
  ASSERT_TRUE(start_with_mod_service(s, "echo", recording_echo, &log));

  Client c;
  ASSERT_EQ(c.connect(s.port()), 0);
  const int kN = 1000;
  int handled = 0;
  for (int i = 0; i < kN; i++) {
    ASSERT_TRUE(c.send_all(mixed_request(i, "echo"))) << "send failed at " << i;
    Response r = c.read_response();
    check_mixed_answer(i, r, "echo");
    if (HasFatalFailure()) FAIL() << "stopped at transaction " << i << "\n" << s.logs_text();
    if (i % 3) handled++;
  }
  EXPECT_TRUE(c.pending().empty()) << "unexpected extra bytes after the last answer";
  EXPECT_FALSE(c.peer_closed());
  EXPECT_EQ(log.calls.load(), handled);
  std::lock_guard<std::mutex> g(log.mu);
  EXPECT_EQ(log.ports.size(), static_cast<size_t>(handled));
  ASSERT_FALSE(log.ports.empty());
  EXPECT_EQ(*log.ports.begin(), *log.ports.rbegin())
      << "transactions came over several connections";
  EXPECT_EQ(*log.ports.begin(), c.local_port());
}

// 200 connections open at the same time, each doing several transactions.
TEST(KeepAlive, TwoHundredConcurrentConnections) {
  std::atomic<int> calls{0};
  TestServer s;
  ASSERT_NE(add_echo_service(s, "echo", &calls), nullptr);
  ASSERT_TRUE(s.start());

  const int kConns = 200, kPerConn = 6;
  std::atomic<int> connected{0}, succeeded{0}, go{0};
  std::mutex err_mu;
  std::vector<std::string> errors;
  auto record = [&](const std::string &e) {
    std::lock_guard<std::mutex> g(err_mu);
    if (errors.size() < 20) errors.push_back(e);
  };
  std::vector<std::thread> threads;
  threads.reserve(kConns);
  for (int t = 0; t < kConns; t++) {
    threads.emplace_back([&, t] {
      Client c;
      int rc = c.connect(s.port());
      connected++;
      if (rc != 0) {
        record("connect " + std::to_string(t) + ": " + strerror(-rc));
        return;
      }
      // Start talking only once every connection is open, so that all 200
      // are really concurrent.
      if (!wait_until([&] { return go.load() != 0; }, ms(20000))) {
        record("start signal never came");
        return;
      }
      for (int k = 0; k < kPerConn; k++) {
        int i = t * kPerConn + k;
        if (!c.send_all(mixed_request(i, "echo"), ms(20000))) {
          record("send " + std::to_string(t) + "/" + std::to_string(k));
          return;
        }
        Response r = c.read_response(ms(20000));
        if (!r.ok || r.conn_close()) {
          record("conn " + std::to_string(t) + " txn " + std::to_string(k) + ": " + r.error + " " +
                 r.status_line);
          return;
        }
        int want = i % 3 == 1 ? 204 : 200;
        if (r.code != want || (i % 3 == 2 && r.body != body_for(i))) {
          record("conn " + std::to_string(t) + " txn " + std::to_string(k) + ": wrong answer " +
                 r.status_line);
          return;
        }
      }
      succeeded++;
    });
  }
  EXPECT_TRUE(wait_until([&] { return connected.load() == kConns; }, ms(20000)));
  go = 1;
  for (auto &t : threads) t.join();
  {
    std::lock_guard<std::mutex> g(err_mu);
    for (auto &e : errors) ADD_FAILURE() << e;
  }
  EXPECT_EQ(succeeded.load(), kConns) << s.logs_text();
  int handled = 0;
  for (int i = 0; i < kConns * kPerConn; i++) handled += i % 3 != 0;
  EXPECT_EQ(calls.load(), handled);
}

namespace {

// REQMOD handler of "seq": answers 200 with X-Seq copied from the request,
// without reading the request body (the server must skip it).
int seq_handler(icap_request *req, void *user) {
  static_cast<std::atomic<int> *>(user)->fetch_add(1);
  const char *seq = icap_request_header(req, ICAP_HEADERS_ICAP, "X-Seq", 0);
  int rc = icap_request_set_icap_header(req, "X-Seq", seq ? seq : "none");
  if (rc == 0) rc = icap_request_set_status(req, 200);
  if (rc == 0) rc = icap_request_send_headers(req, 0);
  return rc;
}

}  // namespace

// Ten requests of mixed kinds in a single write are answered in order.
TEST(KeepAlive, PipelinedRequestsAnsweredInOrder) {
  std::atomic<int> echo_calls{0}, seq_calls{0};
  TestServer s;
  ASSERT_NE(add_echo_service(s, "echo", &echo_calls), nullptr);
  icap_service *seq = s.add_service("seq");
  ASSERT_NE(seq, nullptr);
  ASSERT_EQ(icap_service_set_handler(seq, ICAP_METHOD_REQMOD, seq_handler, &seq_calls), 0);
  ASSERT_TRUE(s.start());

  const int kN = 10;
  auto build = [](int i) -> std::string {
    std::string tag = "X-Seq: " + std::to_string(i) + "\r\n";
    switch (i % 3) {
      case 0:
        return options_request(i % 2 ? "seq" : "echo");
      case 1: {
        // A POST with a body the handler never reads.
        std::string body(static_cast<size_t>(100 * i + 7), static_cast<char>('A' + i));
        std::string head =
            "POST http://origin.example/p HTTP/1.1\r\nHost: origin.example\r\n"
            "Content-Length: " +
            std::to_string(body.size()) + "\r\n\r\n";
        return build_request("REQMOD", "seq", head, "", body, tag, 50);
      }
      default:
        return respmod("echo", body_for(i), tag, 333);
    }
  };
  for (int round = 0; round < 2; round++) {
    std::string all;
    for (int i = 0; i < kN; i++) all += build(i);
    Client c;
    ASSERT_EQ(c.connect(s.port()), 0);
    if (round == 0) {
      ASSERT_TRUE(c.send_all(all));
    } else {
      // Second round: the same bytes split at odd places in several writes.
      for (size_t off = 0; off < all.size(); off += 97) {
        ASSERT_TRUE(c.send_all(all.substr(off, 97)));
        if (off % 5 == 0) std::this_thread::sleep_for(ms(1));
      }
    }
    for (int i = 0; i < kN; i++) {
      Response r = c.read_response();
      ASSERT_TRUE(r.ok) << "round " << round << " answer " << i << ": " << r.error << "\n"
                        << s.logs_text();
      EXPECT_FALSE(r.conn_close());
      switch (i % 3) {
        case 0:
          EXPECT_EQ(r.code, 200);
          EXPECT_EQ(r.value("Service-ID", ""), i % 2 ? "seq" : "echo")
              << "answer " << i << " out of order";
          break;
        case 1:
          EXPECT_EQ(r.code, 200);
          EXPECT_EQ(r.value("X-Seq", ""), std::to_string(i)) << "answer " << i << " out of order";
          EXPECT_EQ(r.encapsulated, "null-body=0");
          break;
        default:
          EXPECT_EQ(r.code, 200);
          EXPECT_TRUE(r.body == body_for(i)) << "answer " << i << " out of order";
          break;
      }
    }
    // The connection is still usable afterwards.
    Response r = round_trip(c, options_request("echo"));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 200);
  }
  EXPECT_EQ(seq_calls.load(), 2 * 3);   // i = 1, 4, 7
  EXPECT_EQ(echo_calls.load(), 2 * 3);  // i = 2, 5, 8
}
