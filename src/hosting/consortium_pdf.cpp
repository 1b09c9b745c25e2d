// The consortium statement as its members receive it: one A4 PDF with the members' balances,
// each job's cost and its parts, the revenue of public custom versions, and the digest (the
// JSON stays the exact record; the PDF shows the same micro-units formatted).
#include <string>

#include "hosting/consortium.h"
#include "hosting/pdf_doc.h"
#include "hosting/statement.h"

namespace corral {

namespace {

using nlohmann::json;

std::string text_of(const json& j, const char* k) {
  return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
}
int64_t int_of(const json& j, const char* k) {
  return j.contains(k) && j[k].is_number_integer() ? j[k].get<int64_t>() : 0;
}
std::string money(const json& j, const char* k) {
  return format_micros(int_of(j, k));
}
std::string percent(int64_t bp) {
  return std::to_string(bp / 100) + "." + (bp % 100 < 10 ? "0" : "") + std::to_string(bp % 100) +
         "%";
}

}  // namespace

Expected<std::string> consortium_statement_pdf(const json& st) {
  if (!st.is_object() || !st.contains("members") || !st["members"].is_array())
    return make_error("the consortium statement has no members list");
  PdfDoc p;
  if (!p.ok()) return make_error("cannot start the PDF");
  constexpr double L = PdfDoc::kMargin, R = PdfDoc::kW - PdfDoc::kMargin;
  const std::string cur = text_of(st, "currency");
  p.y = L + 10;
  p.font(16, true);
  p.text(L, "Consortium statement: " + text_of(st, "consortium"));
  p.y += 20;
  p.font(9.5);
  p.text(L, "Period: " + text_of(st, "from") + " (inclusive) to " + text_of(st, "to") +
                " (exclusive)");
  p.y += 13;
  p.text(L, "Currency: " + cur + "; compute priced at " + money(st, "compute_price") + " " + cur +
                " per CPU hour; amounts in " + cur + " (exact micro-units in the JSON)");
  if (st.contains("member")) {
    p.y += 13;
    p.text(L, "Member: " + text_of(st, "member"));
  }
  if (st.contains("signature") && st["signature"].is_object()) {
    p.y += 13;
    p.text(L, "Closed and signed (Ed25519); public key " +
                  text_of(st["signature"], "public_key").substr(0, 16) + "...");
  }
  p.y += 24;

  // Members: balance = money + compute - costs + revenue.
  const double mc[] = {L, 200, 262, 324, 386, 448, R};
  p.font(12, true);
  p.text(L, "Members");
  p.y += 15;
  p.font(7.5, true);
  const char* heads[] = {"Member", "Share", "Money", "Compute", "Costs", "Revenue", "Balance"};
  for (int c = 0; c < 7; ++c) p.text(mc[c], heads[c], c >= 1);
  p.line(L, R);
  p.y += 12;
  p.font(7.5);
  for (const auto& m : st["members"]) {
    p.need(14);
    p.text(mc[0], text_of(m, "member").substr(0, 32));
    p.text(mc[1], percent(int_of(m, "share_bp")), true);
    p.text(mc[2], money(m, "money"), true);
    p.text(mc[3], money(m, "compute"), true);
    p.text(mc[4], money(m, "costs"), true);
    p.text(mc[5], money(m, "revenue"), true);
    p.text(mc[6], money(m, "balance"), true);
    p.y += 12;
  }
  p.y += 14;

  if (st.contains("jobs") && st["jobs"].is_array() && !st["jobs"].empty()) {
    p.need(50);
    p.font(12, true);
    p.text(L, "Training jobs");
    p.y += 15;
    for (const auto& j : st["jobs"]) {
      p.need(40);
      p.font(8.5, true);
      char cpu[64];
      std::snprintf(cpu, sizeof cpu, "%.3f CPU s", j.value("cpu_seconds", 0.0));
      p.text(L, "Job " + text_of(j, "job") + ": " + cpu + ", " + pdf_thousands(int_of(j, "flops")) +
                    " FLOPs, " + pdf_thousands(int_of(j, "trained_tokens")) + " tokens; cost " +
                    money(j, "cost") + " " + cur);
      p.y += 12;
      p.font(7.5);
      if (j.contains("contributions"))
        for (const auto& c : j["contributions"]) {
          p.need(12);
          std::snprintf(cpu, sizeof cpu, "%.3f CPU s", c.value("cpu_seconds", 0.0));
          p.text(L + 12, "compute of " + text_of(c, "member") + ": " + cpu + ", valued");
          p.text(R, money(c, "value"), true);
          p.y += 10;
        }
      if (j.contains("parts"))
        for (const auto& c : j["parts"]) {
          p.need(12);
          p.text(L + 12, "part of the cost borne by " + text_of(c, "member"));
          p.text(R, money(c, "amount"), true);
          p.y += 10;
        }
      p.y += 6;
    }
    p.y += 8;
  }

  if (st.contains("revenue") && st["revenue"].is_array() && !st["revenue"].empty()) {
    p.need(50);
    p.font(12, true);
    p.text(L, "Revenue of public custom versions");
    p.y += 15;
    for (const auto& r : st["revenue"]) {
      p.need(40);
      p.font(8.5, true);
      p.text(L, text_of(r, "model") + ": " + pdf_thousands(int_of(r, "requests")) +
                    " requests, amount " + money(r, "amount") + ", licensor's share " +
                    money(r, "licensor_share") + ", net " + money(r, "net") + " " + cur);
      p.y += 12;
      p.font(7.5);
      if (r.contains("parts"))
        for (const auto& c : r["parts"]) {
          p.need(12);
          p.text(L + 12, "paid to " + text_of(c, "member"));
          p.text(R, money(c, "amount"), true);
          p.y += 10;
        }
      p.y += 6;
    }
    p.y += 8;
  }

  p.need(40);
  p.font(8);
  p.text(L, "SHA-256 digest of the statement's canonical JSON:");
  p.y += 12;
  p.font(8, false, true);
  p.text(L, text_of(st, "digest"));
  return p.finish();
}

}  // namespace corral
