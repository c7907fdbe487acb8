// SPDX-License-Identifier: MIT
// Test harness for the sans-IO engine: the shared test library
// (tests/common: the engine driver, the request and chunk builders, the
// strict response parser) and what only the unit tests need on top of it.
//
// Everything the parser does is independent of the engine's own parsers, so
// a test that compares the engine's output with what it parses checks the
// engine against a second implementation.
#ifndef ICAP_TESTS_UNIT_HARNESS_HPP
#define ICAP_TESTS_UNIT_HARNESS_HPP

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "builders.hpp"
#include "engine_driver.hpp"
#include "icap_wire.hpp"

namespace icaptest {

using Resp = icapwire::Response;

// Parses all responses in `in`. `rest` gets the bytes of an incomplete last
// response (0 when everything parsed). Returns false on malformed output.
inline bool parse_responses(std::string_view in, std::vector<Resp> &out, size_t &rest,
                            std::string &err) {
  out.clear();
  bool partial = false;
  size_t used = 0;
  bool ok = icapwire::parse_stream(in, out, partial, err, false, &used);
  rest = in.size() - used;
  return ok;
}

// Decodes the chunked body at in[pos..] as a real client may send it
// (lenient: see icapwire::ChunkedReader). Returns 1 when a whole body was
// read (pos advanced past it), 0 when more bytes are needed, -1 on
// malformed input.
inline int dechunk(std::string_view in, size_t &pos, std::string &body, std::string &last_ext,
                   std::string &err) {
  icapwire::ChunkedReader r(true);
  size_t used = 0;
  std::string b;
  icapwire::Parse p =
      r.read(in.substr(pos), used, err, [&b](const char *d, size_t n) { b.append(d, n); });
  if (p != icapwire::Parse::kOk) return p == icapwire::Parse::kBad ? -1 : 0;
  body += b;
  last_ext = r.last_ext();
  pos += used;
  return 1;
}

// -------------------------------------------------------- split policies ---

// Positions at which to cut an input of n bytes into two pieces: every one
// for small inputs; for large ones every position near both ends and a
// spread in between, so that the run time stays bounded.
inline std::vector<size_t> split_positions(size_t n, size_t all_up_to = 20000, size_t head = 3000,
                                           size_t tail = 1500, size_t spread = 400) {
  std::vector<size_t> v;
  if (n < 2) return v;
  if (n <= all_up_to) {
    for (size_t i = 1; i < n; i++) v.push_back(i);
    return v;
  }
  for (size_t i = 1; i < head && i < n; i++) v.push_back(i);
  size_t lo = head, hi = n > tail ? n - tail : head;
  if (hi > lo)
    for (size_t k = 0; k < spread; k++) v.push_back(lo + (hi - lo) * k / spread);
  for (size_t i = hi; i < n; i++)
    if (i >= head) v.push_back(i);
  return v;
}

}  // namespace icaptest

#endif
