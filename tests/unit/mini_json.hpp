// SPDX-License-Identifier: MIT
// A small strict JSON reader for test data (tests/data/captures/manifest.json).
// Numbers are kept as doubles; strings are UTF-8 with \uXXXX decoded.
#ifndef ICAP_TESTS_UNIT_MINI_JSON_HPP
#define ICAP_TESTS_UNIT_MINI_JSON_HPP

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace icaptest {

struct Json {
  enum Type { kNull, kBool, kNum, kStr, kArr, kObj };
  Type type = kNull;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;

  bool is_null() const { return type == kNull; }
  int64_t i64() const { return static_cast<int64_t>(num); }
  size_t size() const { return type == kArr ? arr.size() : type == kObj ? obj.size() : 0; }
  const Json &operator[](size_t i) const { return i < arr.size() ? arr[i] : null(); }
  const Json &operator[](std::string_view k) const {
    for (auto &kv : obj)
      if (kv.first == k) return kv.second;
    return null();
  }
  bool has(std::string_view k) const {
    for (auto &kv : obj)
      if (kv.first == k) return true;
    return false;
  }
  static const Json &null() {
    static const Json n;
    return n;
  }
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  bool parse(Json &out, std::string &err) {
    if (!value(out, 0)) {
      err = err_ + " at byte " + std::to_string(p_);
      return false;
    }
    ws();
    if (p_ != s_.size()) {
      err = "trailing data at byte " + std::to_string(p_);
      return false;
    }
    return true;
  }

 private:
  bool fail(const char *why) {
    if (err_.empty()) err_ = why;
    return false;
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\t'))
      p_++;
  }
  bool lit(std::string_view w) {
    if (s_.substr(p_, w.size()) != w) return fail("bad literal");
    p_ += w.size();
    return true;
  }
  static void utf8(std::string &o, uint32_t cp) {
    if (cp < 0x80) {
      o += static_cast<char>(cp);
    } else if (cp < 0x800) {
      o += static_cast<char>(0xc0 | (cp >> 6));
      o += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      o += static_cast<char>(0xe0 | (cp >> 12));
      o += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      o += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      o += static_cast<char>(0xf0 | (cp >> 18));
      o += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      o += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      o += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool hex4(uint32_t &v) {
    if (s_.size() - p_ < 4) return fail("short \\u escape");
    v = 0;
    for (int i = 0; i < 4; i++) {
      char c = s_[p_++];
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) return fail("bad \\u escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return true;
  }
  bool string(std::string &o) {
    if (p_ >= s_.size() || s_[p_] != '"') return fail("expected string");
    p_++;
    while (true) {
      if (p_ >= s_.size()) return fail("unterminated string");
      char c = s_[p_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        o += c;
        continue;
      }
      if (p_ >= s_.size()) return fail("bad escape");
      char e = s_[p_++];
      switch (e) {
        case '"':
          o += '"';
          break;
        case '\\':
          o += '\\';
          break;
        case '/':
          o += '/';
          break;
        case 'b':
          o += '\b';
          break;
        case 'f':
          o += '\f';
          break;
        case 'n':
          o += '\n';
          break;
        case 'r':
          o += '\r';
          break;
        case 't':
          o += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(p_, 2) == "\\u") {
            p_ += 2;
            uint32_t lo;
            if (!hex4(lo)) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          utf8(o, cp);
          break;
        }
        default:
          return fail("bad escape");
      }
    }
  }
  // The members of an object or array whose opening bracket is at p_: none,
  // or `member` (which parses one) repeated with ',' between, up to `close`.
  template <typename Member>
  bool members(char close, Member member) {
    p_++;
    ws();
    if (p_ < s_.size() && s_[p_] == close) {
      p_++;
      return true;
    }
    while (true) {
      if (!member()) return false;
      ws();
      if (p_ < s_.size() && s_[p_] == ',') {
        p_++;
        continue;
      }
      if (p_ < s_.size() && s_[p_] == close) {
        p_++;
        return true;
      }
      return fail(close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  bool value(Json &v, int depth) {
    if (depth > 64) return fail("too deep");
    ws();
    if (p_ >= s_.size()) return fail("unexpected end");
    char c = s_[p_];
    if (c == '{') {
      v.type = Json::kObj;
      return members('}', [&] {
        ws();
        std::string k;
        if (!string(k)) return false;
        ws();
        if (p_ >= s_.size() || s_[p_] != ':') return fail("expected ':'");
        p_++;
        Json child;
        if (!value(child, depth + 1)) return false;
        v.obj.emplace_back(std::move(k), std::move(child));
        return true;
      });
    }
    if (c == '[') {
      v.type = Json::kArr;
      return members(']', [&] {
        Json child;
        if (!value(child, depth + 1)) return false;
        v.arr.push_back(std::move(child));
        return true;
      });
    }
    if (c == '"') {
      v.type = Json::kStr;
      return string(v.str);
    }
    if (c == 't') {
      v.type = Json::kBool;
      v.b = true;
      return lit("true");
    }
    if (c == 'f') {
      v.type = Json::kBool;
      return lit("false");
    }
    if (c == 'n') return lit("null");
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = p_;
      while (p_ < s_.size() &&
             (std::string_view("+-.eE0123456789").find(s_[p_]) != std::string_view::npos))
        p_++;
      std::string num(s_.substr(start, p_ - start));
      char *end = nullptr;
      v.type = Json::kNum;
      v.num = std::strtod(num.c_str(), &end);
      if (end != num.c_str() + num.size()) return fail("bad number");
      return true;
    }
    return fail("unexpected character");
  }

  std::string_view s_;
  size_t p_ = 0;
  std::string err_;
};

}  // namespace icaptest

#endif
