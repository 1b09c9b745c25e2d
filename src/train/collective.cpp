#include "train/collective.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#ifdef CORRAL_HAVE_MPI
#include <mpi.h>
#endif

namespace corral {

Status Collective::allgather(const void* mine, size_t bytes, std::vector<uint8_t>* all) {
  all->assign(static_cast<const uint8_t*>(mine), static_cast<const uint8_t*>(mine) + bytes);
  return Status::ok();
}

void Collective::abort(const std::string& error, int code) {
  std::fprintf(stderr, "error: %s\n", error.c_str());
  std::exit(code);
}

Status Collective::allgather_v(const std::vector<uint8_t>& mine,
                               std::vector<std::vector<uint8_t>>* all) {
  CORRAL_ASSIGN_OR_RETURN(auto sizes, gather_values<uint64_t>(mine.size()));
  uint64_t longest = 0;
  for (auto s : sizes) longest = std::max(longest, s);
  std::vector<uint8_t> padded(longest, 0), raw;
  std::memcpy(padded.data(), mine.data(), mine.size());
  CORRAL_RETURN_IF_ERROR(allgather(padded.data(), padded.size(), &raw));
  all->clear();
  for (size_t r = 0; r < sizes.size(); ++r)
    all->emplace_back(raw.begin() + long(r * longest), raw.begin() + long(r * longest + sizes[r]));
  return Status::ok();
}

#ifdef CORRAL_HAVE_MPI
namespace {

class MpiCollective : public Collective {
 public:
  MpiCollective() {
    MPI_Init(nullptr, nullptr);
    // Errors return codes instead of aborting, so they are reported as errors naming the rank.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCollective() override { MPI_Finalize(); }
  int rank() const override { return rank_; }
  [[noreturn]] void abort(const std::string& error, int code) override {
    std::fprintf(stderr, "error (rank %d of %d): %s\n", rank_, size_, error.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
  }
  int size() const override { return size_; }
  Status allgather(const void* mine, size_t bytes, std::vector<uint8_t>* all) override {
    all->resize(bytes * size_t(size_));
    // Chunks under 2 GiB (MPI counts are ints).
    const size_t chunk = size_t(1) << 30;
    std::vector<uint8_t> part;
    for (size_t off = 0; off < bytes || (bytes == 0 && off == 0); off += chunk) {
      const size_t n = std::min(chunk, bytes - off);
      part.resize(n * size_t(size_));
      const int rc = MPI_Allgather(static_cast<const uint8_t*>(mine) + off, int(n), MPI_BYTE,
                                   part.data(), int(n), MPI_BYTE, MPI_COMM_WORLD);
      if (rc != MPI_SUCCESS)
        return make_error("MPI_Allgather failed on rank " + std::to_string(rank_) +
                          " (a rank died?): code " + std::to_string(rc));
      for (int r = 0; r < size_; ++r)
        std::memcpy(all->data() + size_t(r) * bytes + off, part.data() + size_t(r) * n, n);
      if (bytes == 0) break;
    }
    return Status::ok();
  }

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace
#endif

Expected<std::unique_ptr<Collective>> make_collective() {
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!n || std::atoi(n) <= 1) return std::make_unique<Collective>();
#ifdef CORRAL_HAVE_MPI
  return std::unique_ptr<Collective>(std::make_unique<MpiCollective>());
#else
  return make_error("started by mpirun (" + std::string(n) +
                    " ranks) but this corral was built without MPI (install libopenmpi-dev and "
                    "rebuild)");
#endif
}

}  // namespace corral
