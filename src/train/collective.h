// Data-parallel training across processes (Open MPI under mpirun, one rank per member machine):
// the rank, the world size and the one exchange training needs, an allgather whose result is in
// rank order, so every rank sums the same values in the same order and all hold bitwise the same
// adapter. Outside mpirun (or in a build without MPI) it is one process.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace corral {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // A rank that fails ends the whole job at once (the others would wait for it forever in
  // their next exchange): the error is printed first, then every rank exits with `code`.
  [[noreturn]] virtual void abort(const std::string& error, int code);
  // Every rank's `bytes` bytes (the same count on all ranks), concatenated in rank order.
  virtual Status allgather(const void* mine, size_t bytes, std::vector<uint8_t>* all);
  // Variable-length: each rank's buffer, in rank order.
  Status allgather_v(const std::vector<uint8_t>& mine, std::vector<std::vector<uint8_t>>* all);
  template <class T>
  Expected<std::vector<T>> gather_values(const T& v) {  // trivially copyable T, one per rank
    std::vector<uint8_t> raw;
    CORRAL_RETURN_IF_ERROR(allgather(&v, sizeof v, &raw));
    std::vector<T> out(static_cast<size_t>(size()));
    std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  }
};

// MPI when launched by mpirun (OMPI_COMM_WORLD_SIZE set) and built with it; else one process.
// An error when under mpirun without MPI support, rather than N independent runs.
Expected<std::unique_ptr<Collective>> make_collective();

}  // namespace corral
