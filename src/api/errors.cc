// SPDX-License-Identifier: MIT
// Error names and messages, version, ICAP reason phrases and section names:
// pure functions over static tables. They allocate nothing and call nothing
// that throws; the guard is there so that this stays true if they change.
#include "api/guard.hpp"
#include "icap/icap.h"
#include "protocol/encapsulated.hpp"

using icap::detail::guard_value;

extern "C" {

const char *icap_strerror(int err) {
  return guard_value<const char *>("unknown error", [err]() -> const char * {
    switch (err) {
#define ICAP_STRERROR_(name, val, msg) \
  case ICAP_##name:                    \
    return msg;
      ICAP_ERRNO_MAP(ICAP_STRERROR_)
#undef ICAP_STRERROR_
      case 0:
        return "success";
      default:
        return "unknown error";
    }
  });
}

const char *icap_err_name(int err) {
  return guard_value<const char *>("ICAP_EUNKNOWN", [err]() -> const char * {
    switch (err) {
#define ICAP_ERRNAME_(name, val, msg) \
  case ICAP_##name:                   \
    return "ICAP_" #name;
      ICAP_ERRNO_MAP(ICAP_ERRNAME_)
#undef ICAP_ERRNAME_
      case 0:
        return "ICAP_OK";
      default:
        return "ICAP_EUNKNOWN";
    }
  });
}

unsigned icap_version(void) { return ICAP_VERSION_HEX; }

const char *icap_version_string(void) { return ICAP_VERSION_STRING; }

const char *icap_status_reason(int code) {
  return guard_value<const char *>("Server Error", [code]() -> const char * {
    switch (code) {
      case 100:
        return "Continue";
      case 200:
        return "OK";
      case 201:
        return "Created";
      case 204:
        return "No Content";
      case 206:
        return "Partial Content";
      case 400:
        return "Bad Request";
      case 403:
        return "Forbidden";
      case 404:
        return "ICAP Service Not Found";
      case 405:
        return "Method Not Allowed For Service";
      case 407:
        return "Proxy Authentication Required";
      case 408:
        return "Request Timeout";
      case 413:
        return "Request Entity Too Large";
      case 500:
        return "Server Error";
      case 501:
        return "Method Not Implemented";
      case 502:
        return "Bad Gateway";
      case 503:
        return "Service Overloaded";
      case 505:
        return "ICAP Version Not Supported";
      default:
        if (code >= 100 && code < 200) return "Informational";
        if (code >= 200 && code < 300) return "Success";
        if (code >= 300 && code < 400) return "Redirection";
        if (code >= 400 && code < 500) return "Client Error";
        return "Server Error";
    }
  });
}

const char *icap_section_name(icap_section section) {
  if (section < 0 || section >= ICAP_SECTION_COUNT_) return nullptr;
  return guard_value<const char *>(nullptr,
                                   [section] { return icap::detail::section_name(section); });
}

}  // extern "C"
