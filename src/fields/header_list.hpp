// SPDX-License-Identifier: MIT
// A list of header fields: case-insensitive lookup, repeated names kept in
// arrival order (what pyicap calls a dict of lists).
#ifndef ICAP_FIELDS_HEADER_LIST_HPP
#define ICAP_FIELDS_HEADER_LIST_HPP

#include <string>
#include <string_view>
#include <vector>

#include "fields/field_chars.hpp"

namespace icap::detail {

struct Header {
  std::string name;
  std::string value;
};

class HeaderList {
 public:
  void add(std::string_view name, std::string_view value) {
    items_.push_back(Header{std::string(name), std::string(value)});
  }
  // The n-th value of `name`, or nullptr.
  const std::string *get(std::string_view name, size_t n = 0) const noexcept;
  bool has(std::string_view name) const noexcept { return get(name) != nullptr; }
  size_t count_of(std::string_view name) const noexcept;
  void remove(std::string_view name);
  size_t size() const noexcept { return items_.size(); }
  const Header &at(size_t i) const { return items_[i]; }
  void clear() noexcept { items_.clear(); }
  const std::vector<Header> &items() const noexcept { return items_; }

 private:
  std::vector<Header> items_;
};

// Calls fn(token) for every comma-separated, trimmed, non-empty element of
// every value of `name` (list headers such as Allow may be repeated).
template <class Fn>
void for_each_list_item(const HeaderList &h, std::string_view name, Fn fn) {
  for (const Header &f : h.items()) {
    if (!iequals(f.name, name)) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view item = trim_ows(v.substr(0, comma));
      if (!item.empty()) fn(item);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
}

}  // namespace icap::detail

#endif
