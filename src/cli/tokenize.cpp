// corral tokenize (--model PATH | --tokenizer PATH) [--text TEXT] [--bos] [--parse-special] [--json]
// corral tokenize --decode (--model PATH | --tokenizer PATH) --ids 1,2,3
#include <iostream>
#include <iterator>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

namespace corral::cli {

namespace {

struct TokenizeArgs {
  std::string model, tokenizer, text, ids;
  bool has_text = false, bos = false, parse_special = false, json = false, decode = false;
};

Status run_tokenize(const TokenizeArgs& a) {
  if (a.model.empty() == a.tokenizer.empty())
    return make_error("tokenize: give exactly one of --model PATH or --tokenizer PATH");
  const std::string& path = a.model.empty() ? a.tokenizer : a.model;
  CORRAL_ASSIGN_OR_RETURN(auto tok, load_tokenizer(path));
  if (a.decode) {
    if (a.ids.empty()) return make_error("tokenize --decode: --ids is required");
    CORRAL_ASSIGN_OR_RETURN(auto ids, parse_id_list(a.ids, "--ids"));
    for (int32_t id : ids)
      if (id >= tok->vocab().n_tokens())
        return make_error("--ids: token id " + std::to_string(id) + " is outside the vocabulary (" +
                          std::to_string(tok->vocab().n_tokens()) + " tokens)");
    std::cout << tok->decode(ids, true) << std::flush;
    return Status::ok();
  }
  std::string text = a.text;
  if (!a.has_text) text.assign(std::istreambuf_iterator<char>(std::cin), {});
  EncodeOptions eo;
  eo.add_bos = a.bos;
  eo.parse_special = a.parse_special;
  const auto ids = tok->encode(text, eo);
  std::string out = a.json ? "[" : "";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? (a.json ? ", " : " ") : "") + std::to_string(ids[i]);
  out += a.json ? "]\n" : "\n";
  std::cout << out << std::flush;
  return Status::ok();
}

}  // namespace

Action add_tokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "Text to token ids (or ids to text with --decode)");
  auto a = std::make_shared<TokenizeArgs>();
  sub->add_option("--model,-m", a->model, "GGUF, HF folder or any tokenizer file");
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json, tokenizer.model, tokenizer.bin, GGUF");
  auto* text_opt = sub->add_option("--text", a->text, "text to encode (default: stdin)");
  sub->add_flag("--bos", a->bos, "prepend BOS");
  sub->add_flag("--parse-special", a->parse_special, "recognise special tokens in the text");
  sub->add_flag("--json", a->json, "print one JSON array");
  sub->add_flag("--decode", a->decode, "decode --ids to text");
  sub->add_option("--ids", a->ids, "comma-separated ids for --decode");
  return [a, text_opt] {
    a->has_text = text_opt->count() > 0;
    return run_tokenize(*a);
  };
}

}  // namespace corral::cli
