#include "robust_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace robust {

// ------------------------------------------------------------ handlers ---

namespace {

void count_done(icap_request *req, int status, void *user) {
  auto *st = static_cast<Stats *>(user);
  st->done++;
  switch (status) {
    case 0:
      st->done_ok++;
      break;
    case ICAP_ECONNRESET:
      st->done_reset++;
      break;
    case ICAP_ETIMEDOUT:
      st->done_timeout++;
      break;
    case ICAP_ECANCELED:
      st->done_canceled++;
      break;
    case ICAP_EPROTO:
      st->done_proto++;
      break;
    case ICAP_EHANDLER:
      st->done_handler++;
      break;
    default:
      st->done_other++;
      break;
  }
  delete static_cast<std::string *>(icap_request_get_data(req));
  icap_request_set_data(req, nullptr);
}

void track(icap_request *req, Stats *st) {
  st->dispatched++;
  icap_request_on_done(req, count_done, st);
}

int echo_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return icap_request_no_adaptation(req);
}

int fail_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return ICAP_EIO;
}

int abort_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return icap_request_abort(req, ICAP_EIO);
}

// Aborts later, from the loop thread, once a (no-op) job on the thread pool
// is done: icap_request_abort() outside the handler call.
int abort_later_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return icap_request_offload(
      req, [](void *) {},
      [](icap_request *r, int status, void *) {
        if (status == 0) icap_request_abort(r, ICAP_EIO);
      },
      nullptr);
}

int never_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return 0;
}

void read_answer(icap_request *req, const std::string &body) {
  static const char *const skip[] = {"Content-Length", nullptr};
  if (icap_request_copy_http_head(req, skip) != 0) {
    icap_request_send_error(req, 500);
    return;
  }
  std::string n = std::to_string(body.size());
  icap_request_add_http_header(req, "X-Read-Bytes", n.c_str());
  bool has_body = icap_request_has_body(req);
  icap_request_send_headers(req, has_body);
  if (has_body) {
    if (!body.empty()) icap_request_send_chunk(req, body.data(), body.size());
    icap_request_end(req);
  }
}

void on_read(icap_request *req, int status, const char *data, size_t len, void *) {
  if (status < 0) return;  // the transaction is ending; done follows
  auto *body = static_cast<std::string *>(icap_request_get_data(req));
  body->append(data, len);
  if ((status & ICAP_BODY_END) && !(status & ICAP_BODY_PREVIEW_END)) {
    read_answer(req, *body);
    return;
  }
  icap_request_read_chunk(req, on_read, nullptr);  // sends 100 Continue after a preview
}

int read_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  icap_request_set_data(req, new std::string());
  if (!icap_request_has_body(req)) {
    read_answer(req, std::string());
    return 0;
  }
  return icap_request_read_chunk(req, on_read, nullptr);
}

void on_preview_then_nothing(icap_request *req, int status, const char *, size_t, void *) {
  if (status >= 0 && !(status & ICAP_BODY_END))
    icap_request_read_chunk(req, on_preview_then_nothing, nullptr);
}

int preview_never_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  if (!icap_request_has_body(req)) return 0;
  return icap_request_read_chunk(req, on_preview_then_nothing, nullptr);
}

}  // namespace

// -------------------------------------------------------------- server ---

Server::Server(const ServerOptions &o) {
  if (icap_server_new(&srv_) != 0) abort();
  icap_server_set_workers(srv_, o.workers);
  icap_server_set_log(srv_, ICAP_LOG_DEBUG, on_log, this);
  // Keep bugs from hiding behind long defaults: a stuck request shows as
  // a 408 after a few seconds instead of 30.
  icap_server_set_limit(srv_, ICAP_LIMIT_READ_TIMEOUT_MS, 5000);
  icap_server_set_limit(srv_, ICAP_LIMIT_DRAIN_TIMEOUT_MS, 5000);
  for (const auto &l : o.limits) icap_server_set_limit(srv_, l.first, l.second);

  struct Svc {
    const char *name;
    icap_handler_cb req, res;
  };
  const Svc svcs[] = {
      {"echo", echo_handler, echo_handler},
      {"read", read_handler, read_handler},
      {"reqonly", echo_handler, nullptr},
      {"never", never_handler, never_handler},
      {"preview-never", preview_never_handler, preview_never_handler},
      {"fail", fail_handler, fail_handler},
      {"abort", abort_handler, abort_handler},
      {"abort-later", abort_later_handler, abort_later_handler},
  };
  for (const Svc &s : svcs) {
    icap_service *svc = nullptr;
    if (icap_server_add_service(srv_, s.name, &svc) != 0) abort();
    if (s.req) icap_service_set_handler(svc, ICAP_METHOD_REQMOD, s.req, &stats_);
    if (s.res) icap_service_set_handler(svc, ICAP_METHOD_RESPMOD, s.res, &stats_);
  }
}

Server::~Server() {
  if (started_ && !returned_.load()) {
    if (stop().count() < 0) {
      fprintf(stderr, "robust::Server: icap_server_run() did not return after stop; aborting\n");
      abort();
    }
  }
  if (thread_.joinable()) thread_.join();
  icap_server_free(srv_);
}

void Server::on_log(icap_server *, icap_log_level, const char *msg, void *user) {
  auto *s = static_cast<Server *>(user);
  std::lock_guard<std::mutex> g(s->log_mu_);
  if (s->logs_.size() < 10000) s->logs_.emplace_back(msg);
}

std::string Server::logs() {
  std::lock_guard<std::mutex> g(log_mu_);
  std::string o;
  for (const auto &l : logs_) o += l + "\n";
  return o;
}

bool Server::start() {
  if (icap_server_listen(srv_, "127.0.0.1", 0) != 0) return false;
  port_ = icap_server_port(srv_, 0);
  started_ = true;
  thread_ = std::thread([this] {
    icap_server_run(srv_);
    returned_.store(true);
  });
  return port_ > 0;
}

ms Server::stop(ms timeout) {
  auto t0 = Clock::now();
  icap_server_stop(srv_);
  while (!returned_.load()) {
    if (Clock::now() - t0 > timeout) return ms(-1);
    std::this_thread::sleep_for(ms(2));
  }
  if (thread_.joinable()) thread_.join();
  return std::chrono::duration_cast<ms>(Clock::now() - t0);
}

// ---------------------------------------------------------------- conn ---

Conn::~Conn() { close(); }

Conn::Conn(Conn &&o) noexcept { *this = std::move(o); }

Conn &Conn::operator=(Conn &&o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    pos_ = o.pos_;
    total_rx_ = o.total_rx_;
    eof_ = o.eof_;
    o.fd_ = -1;
  }
  return *this;
}

int Conn::connect(int port, int rcvbuf, int sndbuf) {
  close();
  buf_.clear();
  pos_ = 0;
  eof_ = false;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (sndbuf > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fd_ = fd;
  return 0;
}

bool Conn::send(const std::string &data, ms timeout) {
  if (fd_ < 0) return false;
  auto deadline = Clock::now() + timeout;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    // Wait for room, reading what the server says meanwhile.
    auto left = std::chrono::duration_cast<ms>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, static_cast<short>(POLLOUT | (eof_ ? 0 : POLLIN)), 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno != EINTR) return false;
    if (p.revents & POLLIN) {
      char tmp[65536];
      ssize_t m = ::recv(fd_, tmp, sizeof tmp, 0);
      if (m > 0) {
        buf_.append(tmp, static_cast<size_t>(m));
        total_rx_ += static_cast<size_t>(m);
      } else if (m == 0 || (errno != EAGAIN && errno != EINTR)) {
        eof_ = true;
      }
    }
    if (p.revents & (POLLERR | POLLHUP)) return false;
  }
  return true;
}

bool Conn::send_only(const std::string &data, ms timeout) {
  if (fd_ < 0) return false;
  auto deadline = Clock::now() + timeout;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    auto left = std::chrono::duration_cast<ms>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) return false;
    if (p.revents & (POLLERR | POLLHUP)) return false;
  }
  return true;
}

void Conn::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Conn::reset() {
  if (fd_ < 0) return;
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd_);
  fd_ = -1;
}

void Conn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool Conn::fill(Clock::time_point deadline) {
  if (fd_ < 0 || eof_) return false;
  while (true) {
    auto left = std::chrono::duration_cast<ms>(deadline - Clock::now()).count();
    if (left < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      total_rx_ += static_cast<size_t>(n);
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    eof_ = true;  // EOF or reset
    return false;
  }
}

Conn::Got Conn::read(icapwire::Response &r, ms timeout, std::string *why) {
  auto deadline = Clock::now() + timeout;
  std::string w;
  while (true) {
    if (pos_ < buf_.size()) {
      icapwire::Parse p = icapwire::parse_response(std::string_view(buf_).substr(pos_), r, w);
      if (p == icapwire::Parse::kOk) {
        pos_ += r.wire_bytes;
        if (pos_ > (1u << 20) && pos_ == buf_.size()) {
          buf_.clear();
          pos_ = 0;
        }
        return Got::kResponse;
      }
      if (p == icapwire::Parse::kBad) {
        if (why) *why = w;
        return Got::kBad;
      }
    }
    if (!fill(deadline)) {
      if (why) *why = eof_ ? "closed" : "timeout";
      return eof_ ? Got::kClosed : Got::kTimeout;
    }
  }
}

bool Conn::wait_closed(ms timeout) {
  auto deadline = Clock::now() + timeout;
  while (!eof_) {
    if (!fill(deadline) && !eof_) return false;
  }
  return true;
}

// ------------------------------------------------------------ requests ---

std::string http_res_head(size_t content_length) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(content_length) + "\r\n\r\n";
}

std::string http_req_head(const std::string &url) {
  std::string host = "origin.example";
  return "GET " + url + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: robust\r\n\r\n";
}

std::string chunked(const std::string &body, size_t chunk, const std::string &last) {
  std::string o;
  if (chunk == 0) chunk = body.size() ? body.size() : 1;
  for (size_t i = 0; i < body.size(); i += chunk) {
    size_t n = std::min(chunk, body.size() - i);
    char h[32];
    snprintf(h, sizeof h, "%zx\r\n", n);
    o += h;
    o.append(body, i, n);
    o += "\r\n";
  }
  o += last + "\r\n\r\n";
  return o;
}

std::string raw_request(const std::string &method, const std::string &service,
                        const std::string &extra_headers,
                        const std::vector<std::pair<std::string, std::string>> &sections,
                        const std::string &body_kind, const std::string &body) {
  std::string enc;
  std::string secs;
  for (const auto &s : sections) {
    enc += s.first + "=" + std::to_string(secs.size()) + ", ";
    secs += s.second;
  }
  enc += body_kind + "=" + std::to_string(secs.size());
  return method + " icap://127.0.0.1/" + service + " ICAP/1.0\r\nHost: 127.0.0.1\r\n" +
         extra_headers + "Encapsulated: " + enc + "\r\n\r\n" + secs + body;
}

std::string options(const std::string &service, const std::string &extra) {
  return "OPTIONS icap://127.0.0.1/" + service + " ICAP/1.0\r\nHost: 127.0.0.1\r\n" + extra +
         "\r\n";
}

std::string reqmod_get(const std::string &service, const std::string &extra) {
  return raw_request("REQMOD", service, extra, {{"req-hdr", http_req_head()}}, "null-body", "");
}

std::string respmod(const std::string &service, const std::string &body, const std::string &extra,
                    size_t chunk) {
  return raw_request("RESPMOD", service, extra,
                     {{"req-hdr", http_req_head()}, {"res-hdr", http_res_head(body.size())}},
                     "res-body", chunked(body, chunk));
}

std::string respmod_preview(const std::string &service, const std::string &body, size_t preview,
                            size_t chunk, bool rest, const std::string &extra) {
  std::string head = raw_request(
      "RESPMOD", service, extra + "Preview: " + std::to_string(preview) + "\r\n",
      {{"req-hdr", http_req_head()}, {"res-hdr", http_res_head(body.size())}}, "res-body", "");
  if (body.size() <= preview) return head + chunked(body, chunk, "0; ieof");
  std::string o = head + chunked(body.substr(0, preview), chunk);
  if (rest) o += chunked(body.substr(preview), chunk);
  return o;
}

std::string server_healthy(int port) {
  Conn c(port);
  if (!c.ok()) return "cannot connect";
  if (!c.send(options("echo"))) return "cannot send OPTIONS";
  icapwire::Response r;
  std::string why;
  if (c.read(r, ms(5000), &why) != Conn::Got::kResponse) return "no OPTIONS answer: " + why;
  if (r.code != 200) return "OPTIONS answered " + std::to_string(r.code);
  if (r.conn_close()) return "OPTIONS answer closes the connection";
  const std::string body = "healthy body 0123456789";
  if (!c.send(respmod("echo", body))) return "cannot send RESPMOD";
  if (c.read(r, ms(5000), &why) != Conn::Got::kResponse) return "no RESPMOD answer: " + why;
  if (r.code != 200) return "echo answered " + std::to_string(r.code);
  if (r.body != body) return "echo body differs";
  return "";
}

// Every bug these rows once skipped is fixed, so all rows run; setting
// ICAP_RUN_KNOWN_BUGS=0 skips rows still marked as a bug (for bisecting).
bool run_known_bugs() {
  const char *v = getenv("ICAP_RUN_KNOWN_BUGS");
  return !(v && *v == '0');
}

uint64_t raise_nofile() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace robust
