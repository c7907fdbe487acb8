// SPDX-License-Identifier: MIT
#include "protocol/encapsulated.hpp"

#include "fields/field_chars.hpp"

namespace icap::detail {

static const char *const kNames[ICAP_SECTION_COUNT_] = {"req-hdr",  "res-hdr",   "req-body",
                                                        "res-body", "null-body", "opt-body"};

const char *section_name(icap_section s) noexcept {
  return s < ICAP_SECTION_COUNT_ ? kNames[s] : "?";
}

int64_t Encapsulated::section_end(icap_section s) const {
  for (int i = 0; i + 1 < count; i++)
    if (order[i] == s) return offset[order[i + 1]];
  return -1;
}

static bool is_body(icap_section s) { return s >= ICAP_SECTION_REQ_BODY; }

bool parse_encapsulated(std::string_view value, icap_method method, Encapsulated &out,
                        std::string &reason) {
  out.reset();
  std::string_view v = value;
  while (true) {
    size_t comma = v.find(',');
    std::string_view item = trim_ows(v.substr(0, comma));
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      reason = "Encapsulated entry without '='";
      return false;
    }
    std::string_view name = item.substr(0, eq);
    std::string_view num = item.substr(eq + 1);
    int sec = -1;
    for (int i = 0; i < ICAP_SECTION_COUNT_; i++)
      if (name == kNames[i]) sec = i;
    if (sec < 0) {
      reason = "unknown Encapsulated entity";
      return false;
    }
    if (num.empty() || num.size() > 12) {
      reason = "bad Encapsulated offset";
      return false;
    }
    int64_t off = 0;
    for (char c : num) {
      if (c < '0' || c > '9') {
        reason = "bad Encapsulated offset";
        return false;
      }
      off = off * 10 + (c - '0');
    }
    if (out.offset[sec] >= 0) {
      reason = "repeated Encapsulated entity";
      return false;
    }
    if (out.count == 0 ? off != 0 : off <= out.offset[out.order[out.count - 1]]) {
      reason = "Encapsulated offsets must start at 0 and increase";
      return false;
    }
    if (out.count > 0 && is_body(out.order[out.count - 1])) {
      reason = "body entity is not the last Encapsulated entry";
      return false;
    }
    if (out.count > 0 && sec == ICAP_SECTION_REQ_HDR) {
      reason = "req-hdr must come first";
      return false;
    }
    out.offset[sec] = off;
    out.order[out.count++] = static_cast<icap_section>(sec);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  if (!is_body(out.body())) {
    reason = "Encapsulated has no body entity";
    return false;
  }
  bool ok = true;
  switch (method) {
    case ICAP_METHOD_OPTIONS:
      ok = out.count == 1 && (out.has(ICAP_SECTION_NULL_BODY) || out.has(ICAP_SECTION_OPT_BODY));
      break;
    case ICAP_METHOD_REQMOD:
      ok = out.has(ICAP_SECTION_REQ_HDR) && !out.has(ICAP_SECTION_RES_HDR) &&
           (out.has(ICAP_SECTION_REQ_BODY) || out.has(ICAP_SECTION_NULL_BODY));
      break;
    case ICAP_METHOD_RESPMOD:
      ok = out.has(ICAP_SECTION_RES_HDR) &&
           (out.has(ICAP_SECTION_RES_BODY) || out.has(ICAP_SECTION_NULL_BODY));
      break;
    default:
      ok = false;
  }
  if (!ok) reason = "Encapsulated entities do not fit the method";
  return ok;
}

}  // namespace icap::detail
