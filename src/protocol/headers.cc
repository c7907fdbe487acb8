#include "protocol/headers.hpp"

#include <algorithm>

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

const std::string *HeaderList::get(std::string_view name, size_t n) const noexcept {
  for (const Header &h : items_) {
    if (iequals(h.name, name)) {
      if (n == 0) return &h.value;
      n--;
    }
  }
  return nullptr;
}

size_t HeaderList::count_of(std::string_view name) const noexcept {
  size_t n = 0;
  for (const Header &h : items_) n += iequals(h.name, name);
  return n;
}

void HeaderList::remove(std::string_view name) {
  items_.erase(std::remove_if(items_.begin(), items_.end(),
                              [&](const Header &h) { return iequals(h.name, name); }),
               items_.end());
}

}  // namespace icap::detail
