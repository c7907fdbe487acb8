// SPDX-License-Identifier: MIT
// Character classes of header fields (RFC 9110 section 5): tokens, field
// values, and the trimming and case-insensitive comparison every parser of
// ICAP and encapsulated HTTP headers needs. The one copy of these checks.
#ifndef ICAP_FIELDS_FIELD_CHARS_HPP
#define ICAP_FIELDS_FIELD_CHARS_HPP

#include <string_view>

namespace icap::detail {

// ASCII case-insensitive equality (header names, list items).
bool iequals(std::string_view a, std::string_view b) noexcept;

// True for RFC 9110 token characters (header names, methods, chunk
// extension names).
bool is_tchar(unsigned char c) noexcept;

// True for a non-empty string of token characters.
bool is_token(std::string_view s) noexcept;

// True for a character a field value may hold: visible characters, space,
// horizontal tab and obs-text; never NUL, other controls or DEL (a NUL is
// how header smuggling starts).
inline bool is_field_char(unsigned char c) noexcept {
  return !((c < 0x20 && c != '\t') || c == 0x7f);
}

// True when every character of `s` is a field character.
bool is_field_value(std::string_view s) noexcept;

// True when `s` holds no space, control or DEL: what a request target (an
// ICAP URI or an encapsulated HTTP request target) may hold.
bool is_target_text(std::string_view s) noexcept;

// True for a NUL-terminated string without CR or LF: what the API accepts
// as a header value or start line, so a caller cannot inject a header.
bool valid_field_text(const char *s) noexcept;

// Trims spaces and horizontal tabs at both ends.
std::string_view trim_ows(std::string_view s) noexcept;

}  // namespace icap::detail

#endif
