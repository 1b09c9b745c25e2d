#include "hosting/keys.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace corral {

std::string sha256_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) out += hex[md[i] >> 4], out += hex[md[i] & 15];
  return out;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char d = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    d |= (unsigned char)((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
  return d == 0;
}

Expected<NewKey> generate_api_key() {
  unsigned char raw[32], id[8];
  if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(id, sizeof id) != 1)
    return make_error("cannot get random bytes for a key");
  // base62 of the 256-bit number (repeated division of the big-endian bytes).
  static const char* b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::vector<unsigned char> num(raw, raw + 32);
  std::string digits;
  while (std::any_of(num.begin(), num.end(), [](unsigned char c) { return c != 0; })) {
    unsigned rem = 0;
    for (auto& c : num) {
      const unsigned cur = rem * 256 + c;
      c = (unsigned char)(cur / 62);
      rem = cur % 62;
    }
    digits += b62[rem];
  }
  while (digits.size() < 43) digits += '0';
  NewKey k;
  k.secret = "sk-corral-" + std::string(digits.rbegin(), digits.rend());
  static const char* hex = "0123456789abcdef";
  k.key_id = "key_";
  for (unsigned char c : id) k.key_id += hex[c >> 4], k.key_id += hex[c & 15];
  k.hash = sha256_hex(k.secret);
  return k;
}

Status validate_tenant_name(const std::string& name) {
  if (name.empty() || name.size() > 64)
    return make_error("tenant name must have 1 to 64 characters (got " +
                      std::to_string(name.size()) + ")");
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = (unsigned char)name[i];
    const bool ok = std::isalnum(c) || ((c == '.' || c == '_' || c == '-') && i > 0);
    if (!ok || c >= 0x80)
      return make_error(
          "tenant name: character " + std::to_string(i) +
          " is not allowed (use letters, digits, '.', '_' and '-'; start with a letter or digit)");
  }
  return Status::ok();
}

Expected<std::string> normalize_country(const std::string& cc) {
  if (cc.size() != 2 || !std::isalpha((unsigned char)cc[0]) || !std::isalpha((unsigned char)cc[1]))
    return make_error("--country: '" + cc + "' is not a two-letter ISO 3166 country code");
  std::string u = cc;
  for (auto& c : u) c = char(std::toupper((unsigned char)c));
  return u;
}

bool is_eu_country(const std::string& cc) {
  static const char* eu[] = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI",
                             "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU",
                             "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"};
  for (const char* c : eu)
    if (cc == c) return true;
  return false;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {  // proleptic Gregorian, 1970-01-01 = 0
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = unsigned(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + int64_t(doe) - 719468;
}
void civil_from_ms(int64_t ms, int* y, int* m, int* d) {
  int64_t z = (ms >= 0 ? ms : ms - 86399999) / 86400000 + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = unsigned(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = int(doy - (153 * mp + 2) / 5 + 1);
  *m = int(mp < 10 ? mp + 3 : mp - 9);
  *y = int(int64_t(yoe) + era * 400 + (*m <= 2));
}
}  // namespace

Expected<int64_t> parse_iso8601(const std::string& s) {
  auto bad = [&] {
    return make_error("'" + s +
                      "' is not an ISO-8601 time (e.g. 2026-12-01 or 2026-12-01T10:00:00Z)");
  };
  int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return bad();
  size_t p = 10;
  int64_t frac = 0, off = 0;
  if (p < s.size()) {
    if (s[p] != 'T' && s[p] != ' ') return bad();
    int k = 0;
    if (std::sscanf(s.c_str() + p + 1, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5) return bad();
    p += 6;
    if (p < s.size() && s[p] == ':') {
      if (std::sscanf(s.c_str() + p + 1, "%2d%n", &se, &k) != 1 || k != 2) return bad();
      p += 3;
    }
    if (p < s.size() && s[p] == '.') {
      ++p;
      int digits = 0;
      while (p < s.size() && std::isdigit((unsigned char)s[p])) {
        if (digits < 3) frac = frac * 10 + (s[p] - '0');
        ++digits, ++p;
      }
      if (digits == 0) return bad();
      for (; digits < 3; ++digits) frac *= 10;
    }
    if (p < s.size()) {
      if (s[p] == 'Z' && p + 1 == s.size()) {
        ++p;
      } else if ((s[p] == '+' || s[p] == '-') && p + 6 == s.size()) {
        int oh, om;
        if (std::sscanf(s.c_str() + p + 1, "%2d:%2d", &oh, &om) != 2 || oh > 23 || om > 59)
          return bad();
        off = (s[p] == '+' ? 1 : -1) * (oh * 60 + om) * 60000LL;
        p = s.size();
      } else {
        return bad();
      }
    }
  }
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
      mi > 59 || se > 60)
    return bad();
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap) return bad();
  return days_from_civil(y, unsigned(mo), unsigned(d)) * 86400000LL + h * 3600000LL + mi * 60000LL +
         se * 1000LL + frac - off;
}

std::string format_iso8601(int64_t ms) {
  int y, m, d;
  civil_from_ms(ms, &y, &m, &d);
  const int64_t in_day = ((ms % 86400000) + 86400000) % 86400000;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
                int(in_day / 3600000), int(in_day / 60000 % 60), int(in_day / 1000 % 60),
                int(in_day % 1000));
  return buf;
}

int64_t month_start_ms(int64_t ms) {
  int y, m, d;
  civil_from_ms(ms, &y, &m, &d);
  return days_from_civil(y, unsigned(m), 1) * 86400000LL;
}

int64_t next_month_ms(int64_t ms) {
  int y, m, d;
  civil_from_ms(ms, &y, &m, &d);
  return days_from_civil(m == 12 ? y + 1 : y, unsigned(m == 12 ? 1 : m + 1), 1) * 86400000LL;
}

Expected<int64_t> parse_duration_ms(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  const std::string u = end ? end : "";
  double mul = 0;
  if (u == "ms")
    mul = 1;
  else if (u == "s")
    mul = 1000;
  else if (u == "m")
    mul = 60000;
  else if (u == "h")
    mul = 3600000;
  else if (u == "d")
    mul = 86400000;
  if (mul == 0 || !(v >= 0) || v * mul > 1e15)
    return make_error("'" + s + "' is not a duration (e.g. 30s, 15m, 2h, 7d)");
  return int64_t(v * mul);
}

}  // namespace corral
