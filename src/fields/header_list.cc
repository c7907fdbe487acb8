// SPDX-License-Identifier: MIT
#include "fields/header_list.hpp"

#include <algorithm>

namespace icap::detail {

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
