// SPDX-License-Identifier: MIT
// The streaming echo: "no adaptation" when neither a 204 nor a preview lets
// the engine say so, so the original message goes back as a 200 as it
// arrives, chunk by chunk, never buffered whole.
#include "protocol/session.hpp"
#include "protocol/transaction.hpp"

using icap::detail::BodyState;
using icap::detail::HttpHead;
using icap::detail::HttpKind;
using icap::detail::ResponseState;

void icap_request::start_echo() {
  static const icap::detail::HeaderList kNoFields;
  bool resp = req_.head.method == ICAP_METHOD_RESPMOD;
  const HttpHead &hh = resp ? req_.http_res : req_.http_req;
  bool body = has_body();
  write_head(200, kNoFields, resp ? HttpKind::kResponse : HttpKind::kRequest, hh.raw, body);
  if (!body) {
    response_complete();
    return;
  }
  resp_ = ResponseState::kHeadSent;
  // The preview bytes the handler already read are not in the input any
  // more: they go first.
  if (!preview_copy_.empty()) {
    session_->writer().chunk(preview_copy_);
    preview_copy_.clear();
  }
  if (body_done()) {
    echo_end();
    return;
  }
  // Every further chunk is framed again as it arrives (on_body_data).
  body_ = BodyState::kEcho;
  session_->process();
}

void icap_request::echo_end() {
  session_->writer().last_chunk();
  response_complete();
}
