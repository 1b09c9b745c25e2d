#include "model/layers/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "core/fp16.h"

namespace corral {

void kv_store(KvStore& kv, const AttnParams& p, const std::vector<BatchToken>& batch,
              const float* k, const float* v) {
  const int64_t row = p.n_head_kv * p.head_dim, bs = kv.block_size();
  const bool f16 = kv.type() == DType::F16;
  const size_t esz = f16 ? 2 : 4;
  for (size_t t = 0; t < batch.size(); ++t) {
    const int32_t b = kv.blocks(batch[t].seq)[size_t(batch[t].pos / bs)];
    const size_t off = size_t(batch[t].pos % bs) * size_t(row) * esz;
    uint8_t* kd = kv.k_block(p.layer, b) + off;
    uint8_t* vd = kv.v_block(p.layer, b) + off;
    const float* ks = k + int64_t(t) * row;
    const float* vs = v + int64_t(t) * row;
    if (f16) {
      auto* k16 = reinterpret_cast<uint16_t*>(kd);
      auto* v16 = reinterpret_cast<uint16_t*>(vd);
      for (int64_t i = 0; i < row; ++i) k16[i] = f32_to_fp16(ks[i]), v16[i] = f32_to_fp16(vs[i]);
    } else {
      std::memcpy(kd, ks, size_t(row) * 4);
      std::memcpy(vd, vs, size_t(row) * 4);
    }
  }
}

void attention(Context& ctx, KvStore& kv, const AttnParams& p, const std::vector<BatchToken>& batch,
               const float* q, float* out, ForwardScratch& scratch) {
  const int64_t T = int64_t(batch.size()), hd = p.head_dim, row = p.n_head_kv * hd;
  const int64_t bs = kv.block_size(), group = p.n_head / p.n_head_kv;
  const bool f16 = kv.type() == DType::F16;
  const size_t esz = f16 ? 2 : 4;
  const DotFn dot = kernels_best().dot[uint32_t(f16 ? DType::F16 : DType::F32)];
  const AxpyFn axpy = f16 ? kernels_best().axpy_f16 : kernels_best().axpy_f32;
  int64_t max_pos = 0;
  for (auto& b : batch) max_pos = std::max<int64_t>(max_pos, b.pos + 1);
  const int nt = ctx.pool->size();
  const size_t per_thread = size_t(max_pos) + size_t(hd);
  if (scratch.att_scores.size() < per_thread * size_t(nt)) scratch.att_scores.resize(per_thread * size_t(nt));
  std::atomic<int64_t> next{0};
  ctx.pool->run_on_all([&](int ti, int) {
    float* sc = scratch.att_scores.data() + per_thread * size_t(ti);
    float* acc = sc + max_pos;
    for (int64_t item; (item = next.fetch_add(1)) < T * p.n_head;) {
      const int64_t t = item / p.n_head, h = item % p.n_head, kvh = h / group;
      const BatchToken& bt = batch[size_t(t)];
      const auto& blocks = kv.blocks(bt.seq);
      const int64_t p1 = bt.pos + 1;
      const int64_t p0 = p.chunk > 0 ? (bt.pos / p.chunk) * p.chunk : 0;
      const float* qh = q + t * p.n_head * hd + h * hd;
      float mx = -INFINITY;
      for (int64_t pos = p0; pos < p1; ++pos) {
        const uint8_t* kr = kv.k_block(p.layer, blocks[size_t(pos / bs)]) +
                            (size_t(pos % bs) * size_t(row) + size_t(kvh * hd)) * esz;
        const float s = dot(hd, kr, qh) * p.scale;
        sc[pos - p0] = s;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (int64_t i = 0; i < p1 - p0; ++i) {
        sc[i] = std::exp(sc[i] - mx);
        sum += sc[i];
      }
      const float inv = float(1.0 / sum);
      std::fill(acc, acc + hd, 0.f);
      for (int64_t pos = p0; pos < p1; ++pos) {
        const uint8_t* vr = kv.v_block(p.layer, blocks[size_t(pos / bs)]) +
                            (size_t(pos % bs) * size_t(row) + size_t(kvh * hd)) * esz;
        const float w = sc[pos - p0] * inv;
        axpy(hd, w, vr, acc);
      }
      std::memcpy(out + t * p.n_head * hd + h * hd, acc, size_t(hd) * 4);
    }
  });
}

}  // namespace corral
