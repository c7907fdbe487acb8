// SPDX-License-Identifier: MIT
#include "fields/field_chars.hpp"

namespace icap::detail {

static inline char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_tchar(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  // The other token characters (RFC 9110 section 5.6.2).
  static constexpr std::string_view kOther = "!#$%&'*+-.^_`|~";
  return c != 0 && kOther.find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

bool is_field_value(std::string_view s) noexcept {
  for (unsigned char c : s)
    if (!is_field_char(c)) return false;
  return true;
}

bool is_target_text(std::string_view s) noexcept {
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7f) return false;
  return true;
}

bool valid_field_text(const char *s) noexcept {
  if (!s) return false;
  for (; *s; s++)
    if (*s == '\r' || *s == '\n') return false;
  return true;
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace icap::detail
