// SPDX-License-Identifier: MIT
// The C getters accept NULL and answer the documented "absent" values
// instead of crashing (icap.h: "" for strings, -1 for numbers, NULL for
// pointers, 0 for flags); the calls that act return an error.
#include <gtest/gtest.h>

#include "icap/icap.h"

TEST(RequestApiNull, GettersAnswerAbsentValues) {
  const icap_request *r = nullptr;
  EXPECT_STREQ(icap_request_method_name(r), "");
  EXPECT_EQ(icap_request_method(r), ICAP_METHOD_COUNT_);
  EXPECT_STREQ(icap_request_uri(r), "");
  EXPECT_STREQ(icap_request_version(r), "");
  EXPECT_STREQ(icap_request_service_name(r), "");
  EXPECT_EQ(icap_request_service(r), nullptr);
  EXPECT_STREQ(icap_request_client_ip(r), "");
  EXPECT_EQ(icap_request_client_port(r), 0);
  EXPECT_EQ(icap_request_worker(r), 0u);
  EXPECT_EQ(icap_request_header(r, ICAP_HEADERS_ICAP, "Host", 0), nullptr);
  EXPECT_EQ(icap_request_header_count(r, ICAP_HEADERS_HTTP_REQ), 0u);
  EXPECT_EQ(icap_request_header_at(r, ICAP_HEADERS_ICAP, 0, nullptr, nullptr), ICAP_ENOENT);
  EXPECT_EQ(icap_request_encapsulated(r, ICAP_SECTION_REQ_HDR), -1);
  EXPECT_STREQ(icap_request_http_method(r), "");
  EXPECT_STREQ(icap_request_http_uri(r), "");
  EXPECT_STREQ(icap_request_http_req_version(r), "");
  EXPECT_EQ(icap_request_http_status(r), -1);
  EXPECT_STREQ(icap_request_http_reason(r), "");
  EXPECT_STREQ(icap_request_http_res_version(r), "");
  size_t len = 7;
  EXPECT_EQ(icap_request_raw_section(r, ICAP_SECTION_REQ_HDR, &len), nullptr);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(icap_request_has_body(r), 0);
  EXPECT_EQ(icap_request_preview(r), -1);
  EXPECT_EQ(icap_request_ieof(r), 0);
  EXPECT_EQ(icap_request_allows(r, 204), 0);
  EXPECT_EQ(icap_request_in_preview(r), 0);
  EXPECT_EQ(icap_request_response_code(r), 0);
  EXPECT_EQ(icap_request_get_data(r), nullptr);
  EXPECT_EQ(icap_request_write_queue_size(r), 0u);
}

TEST(RequestApiNull, ActionsFail) {
  icap_request *r = nullptr;
  icap_request_set_data(r, nullptr);  // a no-op
  icap_request_ref(r);                // a no-op
  icap_request_unref(r);              // a no-op
  EXPECT_EQ(icap_request_on_done(r, nullptr, nullptr), ICAP_EINVAL);
  EXPECT_EQ(icap_request_no_adaptation(r), ICAP_EINVAL);
  EXPECT_EQ(icap_request_send_error(r, 500), ICAP_EINVAL);
  EXPECT_EQ(icap_request_send_headers(r, 0), ICAP_EINVAL);
  EXPECT_EQ(icap_request_end(r), ICAP_EINVAL);
  EXPECT_EQ(icap_request_pause(r), ICAP_ESTATE);
  EXPECT_EQ(icap_request_resume(r), ICAP_ESTATE);
  EXPECT_EQ(icap_request_continue(r), ICAP_ESTATE);
  EXPECT_EQ(icap_request_abort(r, ICAP_EIO), ICAP_ESTATE);
}
