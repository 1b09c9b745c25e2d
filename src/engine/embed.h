// Embeddings: how a model turns an input's last hidden states (the final norm's output, one
// row of n_embd per token) into one vector. The spec comes from the model's metadata and can be
// overridden per server; pooling itself is plain arithmetic, kept apart from the scheduler that
// collects the rows.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "format/metadata.h"
#include "tokenizer/tokenizer.h"

namespace corral {

enum class Pooling { kLast, kMean, kCls };

struct EmbeddingSpec {
  Pooling pooling = Pooling::kLast;
  bool causal = true;     // false: every token of an input attends to all of it
  bool normalize = true;  // L2-normalised output
};

// A text input's ids: BOS where the vocabulary adds one, and EOS appended where it asks
// (tokenizer.ggml.add_eos_token; tokenizer_config.json add_eos_token): last-token models are
// trained with the EOS state as the embedding, and without it their vectors are wrong.
std::vector<int32_t> encode_for_embedding(const Tokenizer& tok, const std::string& text);

// "last" | "mean" | "cls".
Expected<Pooling> parse_pooling(const std::string& s);
const char* pooling_name(Pooling p);

// From {arch}.pooling_type (GGUF: 1 mean, 2 cls, 3 last; 0 or absent: last, the pooling of
// Llama-based embedding models), {arch}.attention.causal and corral.embedding.normalize.
// Other pooling types (rank, ...) are an error naming the key.
Expected<EmbeddingSpec> embedding_spec_from_metadata(const Metadata& meta);

// The command line's overrides of a model's spec: pooling "" | last | mean | cls, attention
// "" | causal | bidirectional; errors name the flag.
Status override_embedding_spec(EmbeddingSpec* spec, const std::string& pooling,
                               const std::string& pooling_flag, const std::string& attention,
                               const std::string& attention_flag);

// Which rows of an n-token input the pooling reads: all (mean), the first (cls), the last.
inline bool pooling_reads(Pooling p, int64_t i, int64_t n) {
  return p == Pooling::kMean || (p == Pooling::kCls ? i == 0 : i + 1 == n);
}

// rows: [rows read][dim] in position order. Mean sums in double in that order, so the result
// depends only on the rows, never on the batch.
std::vector<float> pool_rows(Pooling p, const float* rows, int64_t n_rows, int64_t dim);

// dims > 0 keeps the first dims values (Matryoshka truncation), then L2-normalises when asked.
void finalize_embedding(std::vector<float>& v, int64_t dims, bool normalize);

}  // namespace corral
