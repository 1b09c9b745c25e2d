#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace corral {

Expected<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return make_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path + ": not a regular file");
  }
  std::shared_ptr<MappedFile> mf(new MappedFile());
  mf->path_ = path;
  mf->size_ = size_t(st.st_size);
  if (mf->size_ > 0 && std::getenv("CORRAL_NO_MMAP")) {
    // Read into anonymous memory backed by transparent huge pages (fewer TLB misses when
    // streaming weights); RSS is the same as with a touched mmap.
    void* p = mmap(nullptr, mf->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return make_error(path + ": cannot allocate " + std::to_string(mf->size_) + " bytes");
    }
    madvise(p, mf->size_, MADV_HUGEPAGE);
    size_t done = 0;
    while (done < mf->size_) {
      const ssize_t r = pread(fd, static_cast<uint8_t*>(p) + done, std::min<size_t>(mf->size_ - done, 1 << 26), off_t(done));
      if (r <= 0) {
        munmap(p, mf->size_);
        ::close(fd);
        return make_error(path + ": read failed at offset " + std::to_string(done));
      }
      done += size_t(r);
    }
    mf->data_ = static_cast<const uint8_t*>(p);
  } else if (mf->size_ > 0) {
    void* p = mmap(nullptr, mf->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return make_error(path + ": mmap failed: " + std::strerror(errno));
    }
    mf->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return mf;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

void release_pages(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (uintptr_t(p) + page - 1) / page * page, e = (uintptr_t(p) + n) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

Expected<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace corral
