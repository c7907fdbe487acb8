// SPDX-License-Identifier: MIT
// What the session and chunked fuzz targets share on top of the engine
// driver of tests/common: the check that everything the engine wrote is a
// well-formed sequence of ICAP responses.
#ifndef ICAP_TESTS_FUZZ_FUZZ_ENGINE_HPP
#define ICAP_TESTS_FUZZ_FUZZ_ENGINE_HPP

#include <string>
#include <vector>

#include "engine_driver.hpp"
#include "fuzz_common.hpp"
#include "icap_wire.hpp"

namespace fuzz {

using Driver = icaptest::EngineDriver;

// The wire so far as ICAP responses; fails on anything malformed, on an
// empty log line, and on output that never stopped growing.
inline std::vector<icapwire::Response> check_wire(const Driver &d, bool &partial_tail) {
  FUZZ_CHECK(!d.runaway, "output never stops growing");
  FUZZ_CHECK(d.empty_log_lines == 0, "empty log line");
  std::vector<icapwire::Response> rs;
  std::string why;
  // Known bug "http-head-cr": a header section that does not end with
  // CRLF CRLF is accepted, and an echo sends it back as it came.
  FUZZ_CHECK(icapwire::parse_stream(d.wire, rs, partial_tail, why, !strict()),
             why + "\n  wire: " + show(d.wire, 600));
  return rs;
}

}  // namespace fuzz

#endif
