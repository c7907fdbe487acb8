// SPDX-License-Identifier: MIT
// The generated OPTIONS answer (RFC 3507 section 4.10), from the service's
// registration; fields the handler set replace the generated ones.
#include "protocol/session.hpp"
#include "protocol/transaction.hpp"

using icap::detail::Header;
using icap::detail::HeaderList;
using icap::detail::HttpKind;

void icap_request::send_options() {
  const icap_service *svc = req_.service;
  icap::detail::SessionHost *host = session_->host();
  HeaderList g;
  std::string methods;
  if (svc->handler[ICAP_METHOD_REQMOD]) methods = "REQMOD";
  if (svc->handler[ICAP_METHOD_RESPMOD]) methods += methods.empty() ? "RESPMOD" : ", RESPMOD";
  g.add("Methods", methods);
  g.add("Service", host->session_server_header() + " " + svc->name);
  g.add("Service-ID", svc->name);
  uint64_t maxc = svc->max_connections;
  if (!maxc) {
    uint64_t limit = host->session_connection_limit();
    maxc = limit / 8 * 7 + limit % 8 * 7 / 8;  // 7/8, rounded down
    if (!maxc) maxc = 1;
  }
  g.add("Max-Connections", std::to_string(maxc));
  if (svc->options_ttl >= 0) g.add("Options-TTL", std::to_string(svc->options_ttl));
  if (svc->allow_204 || svc->allow_206)
    g.add("Allow", svc->allow_204 && svc->allow_206 ? "204, 206" : svc->allow_204 ? "204" : "206");
  if (svc->preview >= 0) g.add("Preview", std::to_string(svc->preview));
  if (svc->has_transfer_preview) g.add("Transfer-Preview", svc->transfer_preview);
  if (svc->has_transfer_ignore) g.add("Transfer-Ignore", svc->transfer_ignore);
  if (svc->has_transfer_complete) g.add("Transfer-Complete", svc->transfer_complete);
  for (const Header &x : svc->options_headers.items()) g.add(x.name, x.value);

  HeaderList fields;
  for (const Header &x : g.items())
    if (!icap_fields_.has(x.name)) fields.add(x.name, x.value);
  for (const Header &x : icap_fields_.items()) fields.add(x.name, x.value);
  write_head(status_ ? status_ : 200, fields, HttpKind::kRequest, {}, false);
  response_complete();
}
