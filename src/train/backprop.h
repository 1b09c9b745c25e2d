// Loss and LoRA gradients of a Llama (1-3.x, and Llama 4 with its experts frozen) over one packed
// training sequence,
// composed from the model's own layers (model/layers: RMSNorm, RoPE, SwiGLU, causal attention,
// LoRA, each with its backward beside the forward) and the base's frozen weights in their file's
// type (the backward multiplies by transposed copies, ops/transposed.h).
#pragma once
#include <array>
#include <map>
#include <memory>
#include <vector>

#include "format/lora.h"
#include "model/layers/rope.h"
#include "model/model.h"
#include "ops/transposed.h"

namespace corral {

// The base prepared for training: its transposes for the activation gradients.
struct TrainBase {
  const Model* m = nullptr;
  std::vector<std::array<std::unique_ptr<TransposedWeight>, kLoraTargets>> wt;  // per layer
  std::unique_ptr<TransposedWeight> out_t;
  // Llama 4's MoE layers (empty elsewhere): per expert the transposes of gate, up and down, and
  // the router's rows [n_expert][n_embd] in f32.
  std::vector<std::vector<std::array<std::unique_ptr<TransposedWeight>, 3>>> experts;
  std::vector<std::vector<float>> router;
  Rope rope;
  // The projection each target id names, of layer l.
  const TensorView& weight(int64_t l, int t) const;
  LoraBaseShape shape() const;  // per layer {n_in, n_out} per target; shared-expert layers
};
Expected<std::unique_ptr<TrainBase>> prepare_train_base(const Model& m, ThreadPool* pool);

// Documents packed into one sequence: pos restarts at 0 per document, start[t] is the index of
// t's document's first token, target[t] the id to predict at t (-1: no loss there). doc[t] and
// pos[t] key the dropout masks, so a token's mask does not depend on how it was packed.
struct PackedSequence {
  std::vector<int32_t> tokens, pos, start, target;
  std::vector<int64_t> doc;  // the record's global index
};

struct Dropout {
  float p = 0;
  uint64_t seed = 0;
  int64_t step = 0;
};

struct SeqStats {
  double loss_sum = 0;  // sum over predicted tokens of -log p(target)
  int64_t predicted = 0, correct = 0;
  double flops = 0;     // counted for what was computed
};

// Adds d(loss_scale * loss_sum)/dA and /dB into grads (shaped like ad). recompute: keep only each
// layer's input and recompute its activations during the backward (less memory, one more forward).
// embed_grad (optional): adds the gradient of the embedding rows the sequence used (the lookup
// alone; with tied embeddings the LM head's part of the table's gradient is not in it).
Expected<SeqStats> forward_backward(Context& ctx, const TrainBase& b, const LoraAdapter& ad,
                                    const PackedSequence& s, float loss_scale, const Dropout& drop,
                                    bool recompute, LoraAdapter* grads,
                                    std::map<int32_t, std::vector<float>>* embed_grad = nullptr);
// Forward only (validation): no dropout.
Expected<SeqStats> forward_loss(Context& ctx, const TrainBase& b, const LoraAdapter& ad,
                                const PackedSequence& s);

// Bytes of activations one layer keeps for a sequence of T tokens.
size_t layer_activation_bytes(const HParams& hp, const LoraAdapter& ad, int64_t T, bool dropout);

}  // namespace corral
