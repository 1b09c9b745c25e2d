// The optimizer over an adapter's parameters (every A and B, flattened in layer/target order):
// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments) or plain
// SGD (p -= lr * grad); gradient clipping by the global L2 norm; the learning-rate schedules.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "format/lora.h"

namespace corral {

struct OptimizerConfig {
  std::string kind = "adamw";       // adamw | sgd
  std::string schedule = "cosine";  // cosine | linear | constant
  float lr = 2e-4f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
  float clip = 1.f;                 // 0: no clipping
  int64_t warmup = 0, total_steps = 1;
};

// The learning rate of step i (0-based), as transformers' schedules with warmup: i / warmup
// during the warmup, then cosine or linear decay to 0 at total_steps, or constant.
double lr_at(const OptimizerConfig& c, int64_t step);

// Pointers to each matrix's values, in one fixed order (shared by parameters, gradients, moments).
std::vector<std::vector<float>*> adapter_tensors(LoraAdapter& a);
// Same shapes, zero.
LoraAdapter zeros_like(const LoraAdapter& a);

struct OptimizerState {
  int64_t t = 0;             // updates done
  std::vector<float> m, v;   // AdamW moments, flattened
};

// The global L2 norm of the gradients (double accumulation, fixed order).
double grad_norm(LoraAdapter& grads);
// Scales grads so their norm is at most clip (torch's clip_grad_norm_: coef = clip / (norm + 1e-6)).
void clip_grads(LoraAdapter& grads, double norm, float clip);
// One update of params with grads at learning rate lr.
void optimizer_step(const OptimizerConfig& c, double lr, LoraAdapter& params, LoraAdapter& grads,
                    OptimizerState& st);

}  // namespace corral
