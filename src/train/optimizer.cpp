#include "train/optimizer.h"

#include <cmath>

namespace corral {

double lr_at(const OptimizerConfig& c, int64_t step) {
  if (c.warmup > 0 && step < c.warmup) return double(c.lr) * double(step) / double(c.warmup);
  if (c.schedule == "constant") return c.lr;
  const double span = double(std::max<int64_t>(1, c.total_steps - c.warmup));
  const double prog = std::min(1.0, double(step - c.warmup) / span);
  if (c.schedule == "linear") return double(c.lr) * std::max(0.0, 1.0 - prog);
  return double(c.lr) * 0.5 * (1.0 + std::cos(M_PI * prog));
}

std::vector<std::vector<float>*> adapter_tensors(LoraAdapter& a) {
  std::vector<std::vector<float>*> out;
  for (auto& l : a.layers)
    for (auto& m : l)
      if (m.present()) {
        out.push_back(&m.a);
        out.push_back(&m.b);
      }
  return out;
}

LoraAdapter zeros_like(const LoraAdapter& a) {
  LoraAdapter z = a;
  for (auto* v : adapter_tensors(z)) std::fill(v->begin(), v->end(), 0.f);
  return z;
}

double grad_norm(LoraAdapter& grads) {
  double s = 0;
  for (auto* v : adapter_tensors(grads))
    for (float g : *v) s += double(g) * g;
  return std::sqrt(s);
}

void clip_grads(LoraAdapter& grads, double norm, float clip) {
  if (clip <= 0) return;
  const double coef = double(clip) / (norm + 1e-6);
  if (coef >= 1) return;
  for (auto* v : adapter_tensors(grads))
    for (float& g : *v) g = float(double(g) * coef);
}

void optimizer_step(const OptimizerConfig& c, double lr, LoraAdapter& params, LoraAdapter& grads,
                    OptimizerState& st) {
  auto ps = adapter_tensors(params), gs = adapter_tensors(grads);
  ++st.t;
  if (c.kind == "sgd") {
    for (size_t k = 0; k < ps.size(); ++k)
      for (size_t i = 0; i < ps[k]->size(); ++i) {
        float& p = (*ps[k])[i];
        const double g = double((*gs[k])[i]) + double(c.weight_decay) * p;
        p = float(double(p) - lr * g);
      }
    return;
  }
  size_t n = 0;
  for (auto* p : ps) n += p->size();
  if (st.m.size() != n) st.m.assign(n, 0.f), st.v.assign(n, 0.f);
  const double b1 = c.beta1, b2 = c.beta2;
  const double bc1 = 1 - std::pow(b1, double(st.t)), bc2 = 1 - std::pow(b2, double(st.t));
  const double step = lr / bc1, sq2 = std::sqrt(bc2);
  size_t at = 0;
  for (size_t k = 0; k < ps.size(); ++k)
    for (size_t i = 0; i < ps[k]->size(); ++i, ++at) {
      float& p = (*ps[k])[i];
      const double g = (*gs[k])[i];
      double pd = double(p) * (1 - lr * double(c.weight_decay));
      const double m = b1 * st.m[at] + (1 - b1) * g;
      const double v = b2 * st.v[at] + (1 - b2) * g * g;
      st.m[at] = float(m);
      st.v[at] = float(v);
      pd -= step * double(st.m[at]) / (std::sqrt(double(st.v[at])) / sq2 + double(c.eps));
      p = float(pd);
    }
}

}  // namespace corral
