// SPDX-License-Identifier: MIT
// The chunked-body decoder (protocol/chunked.hpp), data-driven: each case is
// decoded whole, split at every byte position and one byte at a time, and
// must give the same data, end, ieof and error every time.
#include "protocol/chunked.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using icap::detail::ChunkDecoder;

namespace {

struct Result {
  std::string data;
  bool end = false;
  bool ieof = false;
  bool error = false;
  size_t consumed = 0;  // input bytes consumed when the body ended
  std::string why;
  int data_events = 0;
  bool span_ok = true;  // every data span lay inside the piece given

  std::string str() const {
    return "data=" + std::to_string(data.size()) + ":" + data + " end=" + std::to_string(end) +
           " ieof=" + std::to_string(ieof) + " error=" + std::to_string(error) +
           " consumed=" + std::to_string(consumed) + " span_ok=" + std::to_string(span_ok);
  }
};

// Decodes `in` fed in pieces cut at `cuts` (sorted), like the session does:
// call next() until it needs more, then hand it the next piece.
Result decode(const std::string &in, const std::vector<size_t> &cuts, uint64_t max_chunk) {
  ChunkDecoder d(max_chunk);
  Result r;
  std::vector<size_t> ends = cuts;
  ends.push_back(in.size());
  size_t off = 0;
  for (size_t end : ends) {
    if (end < off) continue;
    for (int guard = 0; guard < 100000; guard++) {
      size_t used = 0, len = 0;
      const char *data = nullptr;
      const char *p = in.data() + off;
      size_t n = end - off;
      ChunkDecoder::Event ev = d.next(p, n, &used, &data, &len);
      if (used > n) {
        r.span_ok = false;
        return r;
      }
      off += used;
      if (ev == ChunkDecoder::kData) {
        if (data < p || data + len > p + n || len == 0) r.span_ok = false;
        r.data.append(data, len);
        r.data_events++;
        continue;
      }
      if (ev == ChunkDecoder::kNeedMore) {
        if (off != end) r.span_ok = false;  // kNeedMore must consume everything
        break;
      }
      if (ev == ChunkDecoder::kEnd) {
        r.end = true;
        r.ieof = d.ieof();
        r.consumed = off;
        return r;
      }
      r.error = true;
      r.why = d.error();
      r.consumed = off;
      // Sticky: asking again gives the error again and consumes nothing.
      size_t used2 = 99;
      if (d.next(in.data() + off, in.size() - off, &used2, &data, &len) != ChunkDecoder::kError ||
          used2 != 0 || !d.in_error())
        r.span_ok = false;
      r.consumed = 0;  // where it stops depends on the split; not compared
      return r;
    }
  }
  return r;
}

struct Case {
  std::string name;
  std::string input;
  std::string data;  // expected decoded data
  bool ok;           // true: ends; false: error
  bool ieof = false;
  uint64_t max_chunk = 16u << 20;
};

std::ostream &operator<<(std::ostream &o, const Case &c) { return o << c.name; }

// Every successful input is followed by "NEXT", which the decoder must leave
// alone (it is the next pipelined request).
const char kNext[] = "NEXT";

std::vector<Case> cases() {
  std::string bin("a\r\n0\r\n\r\nb\0c;ieof\"", 17);
  std::vector<Case> v = {
      {"one_chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", true},
      {"two_chunks", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde", true},
      {"empty_body", "0\r\n\r\n", "", true},
      {"uppercase_hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", true},
      {"mixed_case_hex",
       "1a\r\n" + std::string(26, 'x') + "\r\n1A\r\n" + std::string(26, 'y') + "\r\n0\r\n\r\n",
       std::string(26, 'x') + std::string(26, 'y'), true},
      {"leading_zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", true},
      {"binary_data_with_framing_inside", "11\r\n" + bin + "\r\n0\r\n\r\n", bin, true},
      {"ieof_with_space", "5\r\nhello\r\n0; ieof\r\n\r\n", "hello", true, true},
      {"ieof_without_space", "0;ieof\r\n\r\n", "", true, true},
      {"ieof_after_other_extension", "0; foo=bar; ieof\r\n\r\n", "", true, true},
      {"ieof_before_other_extension", "0; ieof; foo=bar\r\n\r\n", "", true, true},
      {"ieof_bws_everywhere", "0 \t; \tieof \t\r\n\r\n", "", true, true},
      {"ieof_tab", "0;\tieof\r\n\r\n", "", true, true},
      {"ieof_with_quoted_value_before", "0; foo=\"a;b\"; ieof\r\n\r\n", "", true, true},
      {"ieof_with_escaped_quote_before", "0; foo=\"a\\\"b;c\"; ieof\r\n\r\n", "", true, true},
      {"ieof_bws_around_equals", "0; foo = bar ; ieof\r\n\r\n", "", true, true},
      {"ieofx_is_not_ieof", "0; ieofx\r\n\r\n", "", true, false},
      {"xieof_is_not_ieof", "0; xieof\r\n\r\n", "", true, false},
      {"ieof_as_value_is_not_ieof", "0; foo=ieof\r\n\r\n", "", true, false},
      {"ieof_in_quoted_value_is_not_ieof", "0; foo=\"x; ieof\"\r\n\r\n", "", true, false},
      {"ieof_on_data_chunk_is_ignored", "5; ieof\r\nhello\r\n0\r\n\r\n", "hello", true, false},
      {"extension_on_data_chunk", "5; name=value; q=\"x y\"\r\nhello\r\n0\r\n\r\n", "hello", true},
      {"trailers", "5\r\nhello\r\n0\r\nX-Trailer: 1\r\nY:2\r\n\r\n", "hello", true},
      {"ieof_with_trailer", "0; ieof\r\nX-T: v\r\n\r\n", "", true, true},
      {"chunk_at_the_limit", "64\r\n" + std::string(100, 'z') + "\r\n0\r\n\r\n",
       std::string(100, 'z'), true, false, 100},
      {"long_extension_accepted", "0; x=" + std::string(3000, 'a') + "\r\n\r\n", "", true},
      // errors
      {"bad_size", "zz\r\nhello\r\n0\r\n\r\n", "", false},
      {"empty_size_line", "\r\nhello\r\n0\r\n\r\n", "", false},
      {"space_before_size", " 5\r\nhello\r\n0\r\n\r\n", "", false},
      {"0x_prefix", "0x5\r\nhello\r\n0\r\n\r\n", "", false},
      {"negative_size", "-5\r\nhello\r\n0\r\n\r\n", "", false},
      {"plus_size", "+5\r\nhello\r\n0\r\n\r\n", "", false},
      {"over_the_limit", "65\r\n" + std::string(101, 'z') + "\r\n0\r\n\r\n", "", false, false, 100},
      {"over_the_limit_by_digits", "1000001\r\n", "", false},
      {"overflow_16mib_limit", "ffffffffffffffffffff\r\nx\r\n0\r\n\r\n", "", false},
      {"overflow_64bit_unlimited", "10000000000000000\r\nx\r\n0\r\n\r\n", "", false, false,
       ~uint64_t{0}},
      {"overflow_64bit_wrap_to_small", "10000000000000005\r\nhello\r\n0\r\n\r\n", "", false, false,
       ~uint64_t{0}},
      {"missing_crlf_after_data", "5\r\nhello0\r\n\r\n", "hello", false},
      {"data_longer_than_size", "3\r\nhello\r\n0\r\n\r\n", "hel", false},
      {"cr_without_lf_after_data", "5\r\nhello\rX0\r\n\r\n", "hello", false},
      {"bare_lf_after_size", "5\nhello\r\n0\r\n\r\n", "", false},
      {"bare_lf_after_data", "5\r\nhello\n0\r\n\r\n", "hello", false},
      {"bare_lf_after_last_chunk", "5\r\nhello\r\n0\n\r\n", "hello", false},
      {"bare_lf_ends_trailers", "0\r\n\n", "", false},
      {"bare_cr_in_size_line", "5\rhello\r\n0\r\n\r\n", "", false},
      {"junk_after_size", "5 x\r\nhello\r\n0\r\n\r\n", "", false},
      {"empty_extension_name", "0;\r\n\r\n", "", false},
      {"empty_extension_name_with_value", "0; =x\r\n\r\n", "", false},
      {"empty_extension_value", "0; foo=\r\n\r\n", "", false},
      {"unterminated_quoted_value", "0; foo=\"abc\r\n\r\n", "", false},
      {"backslash_at_end_of_quoted_value", "0; foo=\"abc\\\r\n\r\n", "", false},
      {"trailer_without_colon", "0\r\nnot a trailer\r\n\r\n", "", false},
      {"size_line_too_long", "5;" + std::string(5000, 'a') + "\r\nhello\r\n0\r\n\r\n", "", false},
      {"size_digits_too_long", std::string(5000, '0') + "5\r\nhello\r\n0\r\n\r\n", "", false},
      {"trailer_line_too_long", "0\r\nX: " + std::string(5000, 'a') + "\r\n\r\n", "", false},
  };
  for (Case &c : v)
    if (c.ok) c.input += kNext;
  return v;
}

class Chunked : public ::testing::TestWithParam<Case> {};

TEST_P(Chunked, WholeSplitAndBytewise) {
  const Case &c = GetParam();
  Result whole = decode(c.input, {}, c.max_chunk);
  EXPECT_TRUE(whole.span_ok);
  if (c.ok) {
    EXPECT_TRUE(whole.end) << whole.why;
    EXPECT_FALSE(whole.error) << whole.why;
    EXPECT_EQ(whole.data, c.data);
    EXPECT_EQ(whole.ieof, c.ieof);
    EXPECT_EQ(whole.consumed, c.input.size() - (sizeof kNext - 1)) << "consumed past the body";
  } else {
    EXPECT_TRUE(whole.error) << "accepted: " << whole.str();
    EXPECT_FALSE(whole.end);
    EXPECT_FALSE(whole.why.empty());
  }
  // Data delivered before an error may depend on the split; the verdict and,
  // for good input, everything else must not.
  auto comparable = [&](Result r) {
    if (r.error) r.data.clear();
    r.data_events = 0;
    return r.str();
  };
  const std::string ref = comparable(whole);
  for (size_t k = 1; k < c.input.size(); k++) {
    Result r = decode(c.input, {k}, c.max_chunk);
    ASSERT_EQ(comparable(r), ref) << "split at " << k;
  }
  std::vector<size_t> every;
  for (size_t k = 1; k < c.input.size(); k++) every.push_back(k);
  Result bytes = decode(c.input, every, c.max_chunk);
  EXPECT_EQ(comparable(bytes), ref) << "one byte at a time";
  if (c.ok) {
    EXPECT_EQ(bytes.data_events, static_cast<int>(c.data.size())) << "one data event per byte";
  }
}

INSTANTIATE_TEST_SUITE_P(Table, Chunked, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case> &i) { return i.param.name; });

// One decoder fed step by step: next() decodes `in` from `off` and keeps
// what the decoder said in used, data and len.
class ChunkDecoderSteps : public ::testing::Test {
 protected:
  ChunkDecoder::Event next(const std::string &in, size_t off = 0) {
    return d.next(in.data() + off, in.size() - off, &used, &data, &len);
  }
  ChunkDecoder d;
  size_t used = 0, len = 0;
  const char *data = nullptr;
};

TEST_F(ChunkDecoderSteps, EndIsStickyUntilReset) {
  std::string in = "0; ieof\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  ASSERT_EQ(next(in), ChunkDecoder::kEnd);
  EXPECT_EQ(used, 11u);
  EXPECT_TRUE(d.ieof());
  size_t used2 = 99;
  EXPECT_EQ(d.next(in.data() + used, in.size() - used, &used2, &data, &len), ChunkDecoder::kEnd);
  EXPECT_EQ(used2, 0u) << "a finished decoder must not eat the next body";
  d.reset();
  EXPECT_FALSE(d.ieof()) << "reset clears ieof";
  size_t off = used;
  ASSERT_EQ(next(in, off), ChunkDecoder::kData);
  EXPECT_EQ(std::string(data, len), "abc");
  off += used;
  ASSERT_EQ(next(in, off), ChunkDecoder::kEnd);
  EXPECT_FALSE(d.ieof());
  EXPECT_EQ(off + used, in.size());
}

TEST_F(ChunkDecoderSteps, ResetAfterErrorDecodesAgain) {
  EXPECT_EQ(next("zz\r\n"), ChunkDecoder::kError);
  EXPECT_TRUE(d.in_error());
  d.reset();
  EXPECT_FALSE(d.in_error());
  EXPECT_TRUE(d.error().empty());
  EXPECT_EQ(next("0\r\n\r\n"), ChunkDecoder::kEnd);
}

TEST_F(ChunkDecoderSteps, PartialSizeLineIsBufferedNotRescanned) {
  std::string a = "1f; name=val";
  EXPECT_EQ(next(a), ChunkDecoder::kNeedMore);
  EXPECT_EQ(used, a.size());
  EXPECT_EQ(d.buffered(), a.size());
  ASSERT_EQ(next("ue\r\n" + std::string(31, 'q')), ChunkDecoder::kData);
  EXPECT_EQ(len, 31u);
  EXPECT_EQ(d.buffered(), 0u);
}

}  // namespace
