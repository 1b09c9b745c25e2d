// API keys (256-bit random secrets, only their SHA-256 stored), names, countries and times as
// the hosting commands and the server validate them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "core/status.h"

namespace corral {

struct NewKey {
  std::string key_id;  // key_ + 16 hex digits (public)
  std::string secret;  // sk-corral- + base62 of 32 random bytes (shown once)
  std::string hash;    // hex SHA-256 of the secret (stored)
};
Expected<NewKey> generate_api_key();
std::string sha256_hex(const std::string& s);
bool constant_time_equal(const std::string& a, const std::string& b);

// 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit.
Status validate_tenant_name(const std::string& name);
// Two upper-case letters (ISO 3166-1 alpha-2); lower case is accepted and upper-cased.
Expected<std::string> normalize_country(const std::string& cc);
bool is_eu_country(const std::string& cc);

int64_t now_ms();
// ISO-8601 UTC: 2026-12-01, 2026-12-01T10:00:00Z, with optional .mmm and +hh:mm offsets.
Expected<int64_t> parse_iso8601(const std::string& s);
std::string format_iso8601(int64_t ms);
int64_t month_start_ms(int64_t ms);  // first instant of that UTC calendar month
int64_t next_month_ms(int64_t ms);
// "30s", "15m", "2h", "7d" -> milliseconds.
Expected<int64_t> parse_duration_ms(const std::string& s);

}  // namespace corral
