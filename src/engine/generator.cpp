#include "engine/generator.h"

#include <unistd.h>

#include "model/layers/lora.h"

#include <chrono>
#include <new>

namespace corral {

Expected<std::unique_ptr<Engine>> open_engine(const EngineOptions& opts, const Logger& log) {
  const auto t0 = std::chrono::steady_clock::now();
  auto e = std::make_unique<Engine>();
  LoadOptions lo;
  lo.tokenizer_path = opts.tokenizer_path;
  CORRAL_ASSIGN_OR_RETURN(LoadedModel file, load_model(opts.model_path, lo));
  Metadata meta = file.meta;  // tokenizer keys, before the model takes the file
  e->ctx = std::make_unique<Context>(opts.threads > 0 ? opts.threads : default_thread_count());
  e->ctx->log = log;
  CORRAL_ASSIGN_OR_RETURN(e->model, make_model(std::move(file), log, e->ctx->pool.get()));
  if (meta.find("tokenizer.ggml.model")) {
    CORRAL_ASSIGN_OR_RETURN(auto v, vocab_from_metadata(meta, opts.model_path));
    CORRAL_ASSIGN_OR_RETURN(e->tok, Tokenizer::create(v));
  }
  const HParams& hp = e->model->hp;
  e->ctx_size = opts.ctx_size > 0 ? opts.ctx_size : std::min<int64_t>(hp.n_ctx_train, opts.ctx_cap);
  if (e->ctx_size <= 0 || e->ctx_size > (int64_t(1) << 22))
    return make_error("--ctx-size: " + std::to_string(e->ctx_size) + " is out of range");
  KvCacheConfig kc;
  kc.n_layer = hp.n_layer;
  kc.row = hp.n_head_kv * hp.head_dim;
  kc.block_size = 16;
  kc.n_blocks =
      (e->ctx_size + kc.block_size - 1) / kc.block_size * std::max<int64_t>(opts.n_seq, 1);
  kc.type = opts.kv_type;
  if (opts.kv_type_auto) {
    // Checkpoints in their training precision (F32/BF16, e.g. HF folders) get an F32 cache so
    // they reproduce the reference logits; F16 and quantized weights get F16.
    const DType wt = e->model->layers.empty() ? DType::F32 : e->model->layers[0].wq.type;
    kc.type = wt == DType::F32 || wt == DType::BF16 ? DType::F32 : DType::F16;
  }
  // One block across all layers, K and V.
  const int64_t block = kc.block_size * kc.row * (kc.type == DType::F16 ? 2 : 4) * kc.n_layer * 2;
  if (opts.kv_mib > 0)
    kc.n_blocks = std::max<int64_t>(1, (opts.kv_mib << 20) / std::max<int64_t>(block, 1));
  // The pool is mapped lazily (pages arrive as they are written), so a pool larger than the
  // machine would only fail later, under load, by the kernel's OOM killer: refuse it now.
  const int64_t kv_bytes = block * kc.n_blocks;
  const int64_t phys = int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE));
  if (phys > 0 && kv_bytes > phys)
    return make_error("the KV pool (" + std::to_string(kv_bytes >> 20) +
                      " MiB: --kv-memory, or --parallel x --ctx-size) is larger than this "
                      "machine's memory (" +
                      std::to_string(phys >> 20) +
                      " MiB); lower --kv-memory, --parallel or --ctx-size");
  try {
    e->kv = std::make_unique<PagedKvCache>(kc);
  } catch (const std::bad_alloc&) {
    return make_error("cannot reserve the KV pool (" + std::to_string(kv_bytes >> 20) +
                      " MiB); lower --kv-memory, --parallel or --ctx-size");
  }
  if (!opts.lora_path.empty()) {
    CORRAL_ASSIGN_OR_RETURN(e->adapter, load_adapter_for(*e->model, opts.lora_path));
  }
  e->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return e;
}

Expected<std::shared_ptr<const LoraAdapter>> load_adapter_for(const Model& m, const std::string& path) {
  CORRAL_ASSIGN_OR_RETURN(LoraAdapter a, load_lora_gguf(path));
  if (a.arch != m.hp.arch)
    return make_error(path + ": an adapter of a '" + a.arch + "' base; the model is '" + m.hp.arch + "'");
  CORRAL_RETURN_IF_ERROR(check_lora_shapes(a, lora_base_shape(m)));
  a.prepare_for_serving();
  return std::make_shared<const LoraAdapter>(std::move(a));
}

Status Engine::eval(int32_t seq, const std::vector<int32_t>& ids, int64_t pos0, bool all_logits,
                    std::vector<float>* out) {
  if (pos0 + int64_t(ids.size()) > ctx_size)
    return make_error("context is full: " + std::to_string(pos0 + int64_t(ids.size())) +
                      " positions needed, --ctx-size is " + std::to_string(ctx_size));
  std::vector<BatchToken> batch(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    batch[i] = {seq, int32_t(pos0 + int64_t(i)), ids[i], all_logits || i + 1 == ids.size(), adapter ? 0 : -1};
  scratch.adapters.clear();
  if (adapter) scratch.adapters.push_back(adapter.get());
  Status st = model->forward(*ctx, *kv, batch, scratch, out);
  scratch.adapters.clear();
  return st;
}

}  // namespace corral
