#include "hosting/license.h"

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/embedded.h"
#include "hosting/keys.h"

namespace corral {

namespace {

std::vector<LicenseTerms> load_terms() {
  std::vector<LicenseTerms> out;
  const EmbeddedFile* f = find_embedded("data/licenses.json");
  if (!f) return out;
  auto j = nlohmann::json::parse(f->view(), nullptr, false);
  if (j.is_discarded()) return out;
  auto str = [](const nlohmann::json& e, const char* k) {
    if (!e.contains(k)) return std::string();
    const auto& v = e[k]["value"];
    return v.is_string() ? v.get<std::string>() : std::string();
  };
  for (const auto& e : j["licenses"]) {
    LicenseTerms t;
    t.family = e.value("family", "");
    t.name = str(e, "name"), t.link = str(e, "link"), t.effective = str(e, "effective");
    t.notice = str(e, "notice"), t.attribution = str(e, "attribution");
    t.name_prefix = str(e, "name_prefix"), t.multimodal = str(e, "multimodal");
    t.mau_limit =
        e["mau_limit"]["value"].is_number_integer() ? e["mau_limit"]["value"].get<int64_t>() : 0;
    t.outputs_may_improve_other_llms = e["outputs_may_improve_other_llms"]["value"] == true;
    t.eu_multimodal_excluded = e["eu_multimodal_excluded"]["value"] == true;
    out.push_back(t);
  }
  return out;
}

// Lower case letters, digits and dots; '_' reads as '.', everything else is dropped.
std::string squash(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c))
      o += char(std::tolower(c));
    else if (c == '.' || c == '_')
      o += '.';
  }
  return o;
}

std::string alnum_lower(const std::string& s) {
  std::string o;
  for (unsigned char c : s)
    if (std::isalnum(c)) o += char(std::tolower(c));
  return o;
}

}  // namespace

const std::vector<LicenseTerms>& license_terms() {
  static const std::vector<LicenseTerms> terms = load_terms();
  return terms;
}

const LicenseTerms* find_license(const std::string& family) {
  for (const auto& t : license_terms())
    if (t.family == family) return &t;
  return nullptr;
}

std::string license_family_names() {
  std::string s;
  for (const auto& t : license_terms()) s += (s.empty() ? "" : ", ") + t.family;
  return s;
}

std::string license_family_of(const std::string& text) {
  const std::string s = squash(text);
  // "metallama3communitylicense", "llama3.1", "llama.com/llama3.1/license", "llama2": the version
  // right after the last "llama" that is followed by a digit.
  std::string best;
  for (size_t at = s.find("llama"); at != std::string::npos; at = s.find("llama", at + 1)) {
    size_t i = at + 5;
    std::string v;
    while (i < s.size() && (std::isdigit((unsigned char)s[i]) || s[i] == '.')) v += s[i++];
    // "llama3.21b" (from "Llama-3.2-1B"): the longest prefix that names a family.
    for (size_t len = v.size(); len > 0; --len)
      if (find_license("llama" + v.substr(0, len))) {
        best = "llama" + v.substr(0, len);
        break;
      }
  }
  std::string lower;
  for (unsigned char c : text) lower += char(std::tolower(c));
  if (best.empty() && lower.find("ai.meta.com/llama/license") != std::string::npos) best = "llama2";
  return best;
}

ModelLicense model_license(const std::string& license, const std::string& name,
                           const std::string& link, const std::string& architecture) {
  ModelLicense m;
  for (const std::string* s : {&license, &name, &link}) {
    m.family = license_family_of(*s);
    if (!m.family.empty()) break;
  }
  const LicenseTerms* t = find_license(m.family);
  if (!t) {
    m.family.clear();
    m.name = !name.empty() ? name : license;
    m.link = link;
    return m;
  }
  m.name = !name.empty() ? name : t->name;
  m.link = !link.empty() ? link : t->link;
  m.multimodal = t->multimodal == "all" || (t->multimodal == "vision" && architecture == "mllama");
  return m;
}

std::string hf_folder_license(const std::string& dir) {
  std::ifstream rd(dir + "/README.md");
  if (rd) {
    std::string line;
    bool in_front = false;
    int n = 0;
    while (std::getline(rd, line) && n++ < 200) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line == "---") {
        if (in_front) break;
        in_front = true;
        continue;
      }
      if (!in_front) break;
      if (line.rfind("license:", 0) == 0) {
        std::string v = line.substr(8);
        while (!v.empty() && (v.front() == ' ' || v.front() == '"' || v.front() == '\''))
          v.erase(v.begin());
        while (!v.empty() && (v.back() == ' ' || v.back() == '"' || v.back() == '\'')) v.pop_back();
        return v;
      }
    }
  }
  std::ifstream cf(dir + "/config.json");
  if (cf) {
    std::stringstream ss;
    ss << cf.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_object() && j.contains("license") && j["license"].is_string())
      return j["license"].get<std::string>();
  }
  return "";
}

std::optional<LicenseRefusal> license_gate(const ModelLicense& m, const LicenseGateInput& in) {
  const LicenseTerms* t = find_license(m.family);
  if (!t) return std::nullopt;
  // The licensor's grant is the licence §2 asks for; it lifts the MAU clause only.
  if (t->mau_limit > 0 && in.tenant_mau > t->mau_limit && !in.has_grant)
    return LicenseRefusal{
        "license_required",
        "This model is licensed under the " + t->name +
            ", whose section 2 requires a licence "
            "from Meta for licensees with more than " +
            std::to_string(t->mau_limit) + " monthly active users; this tenant declares " +
            std::to_string(in.tenant_mau) +
            ". The host records such a licence with 'corral license grant TENANT " + t->family +
            " --ref TEXT'."};
  if (t->eu_multimodal_excluded && m.multimodal && is_eu_country(in.tenant_country))
    return LicenseRefusal{
        "license_restricted",
        "This model is a multimodal model of the " + t->name +
            ", whose Acceptable Use Policy "
            "grants no rights to individuals domiciled in, or companies with a principal place of "
            "business in, the European Union; this tenant's country is " +
            in.tenant_country + "."};
  return std::nullopt;
}

std::optional<std::string> naming_warning(const ModelLicense& m, const std::string& served_id) {
  const LicenseTerms* t = find_license(m.family);
  if (!t || t->name_prefix.empty()) return std::nullopt;
  if (alnum_lower(served_id).rfind(alnum_lower(t->name_prefix), 0) == 0) return std::nullopt;
  return "the served id '" + served_id + "' does not begin with \"" + t->name_prefix + "\": the " +
         t->name +
         " (section 1.b.i) asks that a model created, trained or "
         "fine-tuned from " +
         t->family + " and made available include \"" + t->name_prefix +
         "\" at the beginning of its name";
}

}  // namespace corral
