// SPDX-License-Identifier: MIT
// The check every parser table of the unit tests starts a row with.
#ifndef ICAP_TESTS_UNIT_PARSE_TABLE_HPP
#define ICAP_TESTS_UNIT_PARSE_TABLE_HPP

#include <gtest/gtest.h>

#include <string>

namespace icaptest {

// Runs `parse(why)` and checks that it accepted the row's input exactly when
// `want_ok`, and that a rejection says why (`why` not empty). The failure
// message starts with `what`, then shows() (what was parsed) or why. True
// when the row was accepted as it should be, so that its result remains to
// be checked.
template <typename Parse, typename Shows>
bool parsed_as_expected(bool want_ok, Parse parse, Shows shows, const std::string &what = "") {
  std::string why;
  bool ok = parse(why);
  EXPECT_EQ(ok, want_ok) << what << (ok ? shows() : why);
  if (!ok) EXPECT_FALSE(why.empty()) << "a rejection says why";
  return ok && want_ok;
}

}  // namespace icaptest

#endif
