// The Llama license terms as data (data/licenses.json, built into the binary), which license a
// model has, and the gate `corral serve` applies: the 700M-MAU clause (until the licensor grants
// a licence) and the EU exclusion from multimodal models.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace corral {

struct LicenseTerms {
  std::string family;  // llama2, llama3, llama3.1, llama3.2, llama3.3, llama4
  std::string name, link, effective, notice;
  std::string attribution;  // empty: none to display
  std::string name_prefix;  // empty: no naming rule
  int64_t mau_limit = 0;    // 0: no MAU clause
  bool outputs_may_improve_other_llms = false;
  bool eu_multimodal_excluded = false;
  std::string multimodal;  // all, vision, none
};

// Every license of data/licenses.json, in file order.
const std::vector<LicenseTerms>& license_terms();
const LicenseTerms* find_license(const std::string& family);
// "llama2, llama3, ..." (for messages).
std::string license_family_names();
// "llama3.1", "Llama 3.1 Community License", "llama3_1", a license link...: the family, or empty.
std::string license_family_of(const std::string& text);

// What a served model's license is, as detected or declared.
struct ModelLicense {
  std::string family;      // empty: no known Llama license
  std::string name, link;  // from the model's metadata, else the terms'
  bool multimodal = false;
};
// From general.license / general.license.name / general.license.link and the architecture.
ModelLicense model_license(const std::string& license, const std::string& name,
                           const std::string& link, const std::string& architecture);
// From a Hugging Face folder: README.md front matter "license:", else config.json "license".
std::string hf_folder_license(const std::string& dir);

struct LicenseGateInput {
  int64_t tenant_mau = 0;
  std::string tenant_country;  // ISO 3166 alpha-2 or empty
  bool has_grant = false;      // the licensor granted this tenant a licence for the family
};
struct LicenseRefusal {
  std::string code;  // license_required / license_restricted
  std::string message;
};
// nullopt: the tenant may use the model.
std::optional<LicenseRefusal> license_gate(const ModelLicense& m, const LicenseGateInput& in);

// A warning when a served id breaks the family's naming rule for derivatives; nullopt when fine.
std::optional<std::string> naming_warning(const ModelLicense& m, const std::string& served_id);

}  // namespace corral
