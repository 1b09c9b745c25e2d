// The statement as the licensor receives it: an A4 PDF drawn with cairo (text as real text, so
// it can be searched and checked with pdftotext).
#include <algorithm>
#include <map>

#include "hosting/pdf_doc.h"
#include "hosting/statement.h"

namespace corral {

namespace {

using nlohmann::json;

constexpr double kW = PdfDoc::kW, kMargin = PdfDoc::kMargin;

std::string num(int64_t v) { return pdf_thousands(v); }

std::string str(const json& j, const char* k) {
  return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
}

}  // namespace

Expected<std::string> statement_pdf(const json& st, const std::vector<LicenseEvent>* events) {
  PdfDoc p;
  if (!p.ok()) return make_error("cannot start the PDF");
  cairo_t* cr = p.cr;
  const std::string cur = str(st, "currency");
  const bool licensor = str(st, "view") == "licensor";

  cairo_set_source_rgb(cr, 0, 0, 0);
  p.y = kMargin + 10;
  p.font(16, true);
  p.text(kMargin, licensor ? "Llama revenue-share statement: licensor's view"
                           : "Llama revenue-share statement");
  p.y += 20;
  p.font(9.5);
  p.text(kMargin, "Host: " + str(st, "host"));
  p.y += 13;
  p.text(kMargin,
         "Period: " + str(st, "from") + " (inclusive) to " + str(st, "to") + " (exclusive)");
  p.y += 13;
  p.text(kMargin, "Currency: " + cur + "; amounts in " + cur + " (exact micro-units in the JSON)");
  if (st.contains("tenant")) {
    p.y += 13;
    p.text(kMargin, "Tenant: " + str(st, "tenant"));
  }
  if (st.contains("signature")) {
    p.y += 13;
    p.text(kMargin, "Closed and signed (Ed25519); public key " +
                        str(st["signature"], "public_key").substr(0, 16) + "...");
  }
  p.y += 22;

  // Lines grouped by family (the licensor's view has no lines, only families).
  std::map<std::string, std::vector<json>> by_family;
  if (st.contains("lines"))
    for (const auto& l : st["lines"]) by_family[str(l, "family")].push_back(l);
  // Left edges of the two text columns, then right edges of the numbers.
  const double cols[] = {kMargin, 140, 300, 340, 392, 440, 492, kW - kMargin};
  for (auto& [fam, lines] : by_family) {
    p.need(60);
    p.font(12, true);
    p.text(kMargin, "Family " + fam);
    p.y += 15;
    p.font(7.5, true);
    const char* heads[] = {"Tenant", "Model",  "Ver.",   "Requests",
                           "Prompt", "Cached", "Compl.", "Amount"};
    for (int c = 0; c < 8; ++c) p.text(cols[c], heads[c], c >= 2);
    p.line(kMargin, kW - kMargin);
    p.y += 12;
    p.font(7.5);
    for (const auto& l : lines) {
      p.need(24);
      std::string tenant = str(l, "tenant") + (l.value("adjustment", false) ? " (adj.)" : "");
      p.text(cols[0], tenant.substr(0, 24));
      p.text(cols[1], str(l, "model").substr(0, 30));
      p.text(cols[2],
             l["price_version"].is_null() ? "-" : std::to_string(l["price_version"].get<int64_t>()),
             true);
      p.text(cols[3], num(l["requests"]), true);
      p.text(cols[4], num(l["uncached_prompt_tokens"]), true);
      p.text(cols[5], num(l["cached_prompt_tokens"]), true);
      p.text(cols[6], num(l["completion_tokens"]), true);
      p.text(cols[7], format_micros(l["amount_micros"]), true);
      p.y += 10;
      p.text(cols[7],
             "share " + format_micros(l["share_micros"]) + " (" +
                 std::to_string(l["basis_points"].get<int64_t>()) + " bp)",
             true);
      p.y += 12;
    }
    const json& t = st["totals"]["by_family"][fam];
    p.font(8, true);
    p.text(kMargin, "Total " + fam + ": amount " + format_micros(t["amount_micros"]) + " " + cur +
                        ", licensor share " + format_micros(t["share_micros"]) + ", host net " +
                        format_micros(t["net_micros"]));
    p.y += 22;
  }
  if (licensor) {
    p.font(12, true);
    p.text(kMargin, "Per family, all tenants");
    p.y += 15;
    p.font(8);
    for (auto& [fam, t] : st["families"].items()) {
      p.need(14);
      p.text(kMargin, fam + ": " + num(t["requests"]) + " requests, " +
                          num(t["uncached_prompt_tokens"].get<int64_t>() +
                              t["cached_prompt_tokens"].get<int64_t>()) +
                          " prompt and " + num(t["completion_tokens"]) +
                          " completion tokens, revenue " + format_micros(t["amount_micros"]) +
                          ", share " + format_micros(t["share_micros"]));
      p.y += 12;
    }
    p.y += 10;
  }

  // Bar chart: tokens and revenue per model, each scaled to its own maximum.
  std::map<std::string, std::pair<int64_t, int64_t>> per_model;  // tokens, amount
  if (st.contains("lines"))
    for (const auto& l : st["lines"]) {
      auto& m = per_model[str(l, "model")];
      m.first += l["uncached_prompt_tokens"].get<int64_t>() +
                 l["cached_prompt_tokens"].get<int64_t>() + l["completion_tokens"].get<int64_t>();
      m.second += l["amount_micros"].get<int64_t>();
    }
  if (!per_model.empty()) {
    const double row = 26, chart_h = 30 + row * double(per_model.size());
    p.need(chart_h + 20);
    p.font(12, true);
    p.text(kMargin, "Tokens and revenue per model");
    p.y += 16;
    int64_t max_tok = 1, max_amt = 1;
    for (auto& [m, v] : per_model)
      max_tok = std::max(max_tok, v.first), max_amt = std::max(max_amt, v.second);
    const double x0 = 190, width = kW - kMargin - x0 - 90;
    for (auto& [m, v] : per_model) {
      p.font(8);
      p.text(kMargin, m.substr(0, 34));
      cairo_set_source_rgb(cr, 0.25, 0.45, 0.75);
      cairo_rectangle(cr, x0, p.y - 8, std::max(1.0, width * double(v.first) / double(max_tok)), 8);
      cairo_fill(cr);
      cairo_set_source_rgb(cr, 0.85, 0.5, 0.15);
      cairo_rectangle(cr, x0, p.y + 1, std::max(1.0, width * double(v.second) / double(max_amt)),
                      8);
      cairo_fill(cr);
      cairo_set_source_rgb(cr, 0, 0, 0);
      p.font(7);
      p.text(kW - kMargin, num(v.first) + " tok", true);
      p.y += 9;
      p.text(kW - kMargin, format_micros(v.second) + " " + cur, true);
      p.y += row - 9;
    }
    p.font(7);
    cairo_set_source_rgb(cr, 0.25, 0.45, 0.75);
    cairo_rectangle(cr, x0, p.y - 7, 8, 7);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_move_to(cr, x0 + 12, p.y);
    cairo_show_text(cr, "tokens");
    cairo_set_source_rgb(cr, 0.85, 0.5, 0.15);
    cairo_rectangle(cr, x0 + 60, p.y - 7, 8, 7);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_move_to(cr, x0 + 72, p.y);
    cairo_show_text(cr, "revenue");
    p.y += 20;
  }

  if (events && !events->empty()) {
    p.need(40);
    p.font(12, true);
    p.text(kMargin, "License events");
    p.y += 15;
    p.font(7.5);
    for (const auto& e : *events) {
      p.need(12);
      p.text(kMargin, e.kind + " " + e.code + ": tenant " + e.tenant +
                          (e.model.empty() ? "" : ", model " + e.model) + ", family " + e.family);
      p.y += 11;
    }
    p.y += 10;
  }

  // Totals and the digest.
  const json& o = st.contains("totals") ? st["totals"]["overall"] : st["overall"];
  p.need(80);
  p.font(12, true);
  p.text(kMargin, "Totals");
  p.y += 16;
  p.font(9);
  p.text(kMargin, "Requests: " + num(o["requests"]) + "; prompt tokens " +
                      num(o["uncached_prompt_tokens"]) + " uncached, " +
                      num(o["cached_prompt_tokens"]) + " cached; completion tokens " +
                      num(o["completion_tokens"]));
  p.y += 13;
  p.text(kMargin, "Amount: " + format_micros(o["amount_micros"]) + " " + cur);
  p.y += 13;
  p.text(kMargin, "Licensor share: " + format_micros(o["share_micros"]) + " " + cur);
  p.y += 13;
  p.text(kMargin, "Host net: " + format_micros(o["net_micros"]) + " " + cur);
  p.y += 20;
  p.font(8);
  p.text(kMargin, "SHA-256 digest of the statement's canonical JSON:");
  p.y += 12;
  p.font(8, false, true);
  p.text(kMargin, str(st, "digest"));

  return p.finish();
}

}  // namespace corral
