#include "train/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/mapped_file.h"

namespace corral {

namespace {

Status write_synced(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return make_error(path + ": cannot open for writing: " + std::strerror(errno));
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w <= 0) {
      ::close(fd);
      return make_error(path + ": write failed: " + std::strerror(errno));
    }
    off += size_t(w);
  }
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return make_error(path + ": fsync failed");
  return Status::ok();
}

void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void remove_tree(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") std::remove((dir + "/" + n).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

}  // namespace

Status save_checkpoint(const std::string& dir, const Checkpoint& c) {
  ::mkdir(dir.c_str(), 0755);
  if (!is_directory(dir)) return make_error("--checkpoint " + dir + ": cannot create the folder");
  const std::string name = "step-" + std::to_string(c.step);
  const std::string tmp = dir + "/.tmp-" + name, final_dir = dir + "/" + name;
  remove_tree(tmp);
  if (::mkdir(tmp.c_str(), 0755) != 0) return make_error(tmp + ": cannot create: " + std::strerror(errno));
  CORRAL_RETURN_IF_ERROR(write_lora_gguf(tmp + "/adapter.gguf", c.adapter));
  sync_path(tmp + "/adapter.gguf");
  std::string opt(8, '\0');
  std::memcpy(opt.data(), &c.opt.t, 8);
  const uint64_t n = c.opt.m.size();
  opt.append(reinterpret_cast<const char*>(&n), 8);
  opt.append(reinterpret_cast<const char*>(c.opt.m.data()), n * 4);
  opt.append(reinterpret_cast<const char*>(c.opt.v.data()), n * 4);
  CORRAL_RETURN_IF_ERROR(write_synced(tmp + "/optimizer.bin", opt));
  nlohmann::json st = c.state;
  st["step"] = c.step;
  CORRAL_RETURN_IF_ERROR(write_synced(tmp + "/state.json", st.dump(2) + "\n"));
  sync_path(tmp);
  remove_tree(final_dir);  // an older copy of the same step (a rerun)
  if (std::rename(tmp.c_str(), final_dir.c_str()) != 0)
    return make_error(final_dir + ": rename failed: " + std::strerror(errno));
  sync_path(dir);
  return Status::ok();
}

namespace {

constexpr const char* kFiles[] = {"state.json", "adapter.gguf", "optimizer.bin"};

// The newest complete checkpoint's step under dir.
Expected<int64_t> latest_step(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return make_error("--resume " + dir + ": cannot open the folder");
  std::vector<int64_t> steps;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.rfind("step-", 0) != 0 || n.size() > 25) continue;
    const std::string num = n.substr(5);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
    if (file_exists(dir + "/" + n + "/state.json")) steps.push_back(std::stoll(num));
  }
  ::closedir(d);
  if (steps.empty()) return make_error("--resume " + dir + ": no checkpoint (step-N/) in it");
  return *std::max_element(steps.begin(), steps.end());
}

void put_u64(std::vector<uint8_t>& b, uint64_t v) {
  const size_t o = b.size();
  b.resize(o + 8);
  std::memcpy(b.data() + o, &v, 8);
}

}  // namespace

Expected<std::vector<uint8_t>> pack_latest_checkpoint(const std::string& dir) {
  CORRAL_ASSIGN_OR_RETURN(int64_t step, latest_step(dir));
  std::vector<uint8_t> out;
  put_u64(out, uint64_t(step));
  for (const char* f : kFiles) {
    CORRAL_ASSIGN_OR_RETURN(std::string bytes, read_text_file(dir + "/step-" + std::to_string(step) + "/" + f));
    put_u64(out, bytes.size());
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  return out;
}

Expected<Checkpoint> unpack_checkpoint(const std::vector<uint8_t>& buf) {
  size_t off = 0;
  auto u64 = [&](uint64_t* v) {
    if (buf.size() - off < 8) return false;
    std::memcpy(v, buf.data() + off, 8);
    off += 8;
    return true;
  };
  uint64_t step = 0;
  if (!u64(&step)) return make_error("the checkpoint rank 0 sent is truncated");
  char tmpl[] = "/tmp/corral-resume-XXXXXX";
  if (!::mkdtemp(tmpl)) return make_error(std::string("cannot create a temporary folder: ") + std::strerror(errno));
  const std::string root = tmpl, at = root + "/step-" + std::to_string(step);
  ::mkdir(at.c_str(), 0700);
  Status st = Status::ok();
  for (const char* f : kFiles) {
    uint64_t n = 0;
    if (!u64(&n) || buf.size() - off < n) {
      st = make_error("the checkpoint rank 0 sent is truncated");
      break;
    }
    st = write_synced(at + "/" + f, std::string(reinterpret_cast<const char*>(buf.data() + off), n));
    off += n;
    if (!st.is_ok()) break;
  }
  Expected<Checkpoint> c = st.is_ok() ? load_latest_checkpoint(root) : Expected<Checkpoint>(st);
  remove_tree(at);
  ::rmdir(root.c_str());
  return c;
}

Expected<Checkpoint> load_latest_checkpoint(const std::string& dir) {
  CORRAL_ASSIGN_OR_RETURN(int64_t newest, latest_step(dir));
  const std::vector<int64_t> steps{newest};
  const std::string at = dir + "/step-" + std::to_string(steps[0]);
  Checkpoint c;
  c.step = steps[0];
  CORRAL_ASSIGN_OR_RETURN(std::string st, read_text_file(at + "/state.json"));
  c.state = nlohmann::json::parse(st, nullptr, false);
  if (c.state.is_discarded() || !c.state.is_object()) return make_error(at + "/state.json: not a JSON object");
  CORRAL_ASSIGN_OR_RETURN(c.adapter, load_lora_gguf(at + "/adapter.gguf"));
  CORRAL_ASSIGN_OR_RETURN(std::string opt, read_text_file(at + "/optimizer.bin"));
  if (opt.size() < 16) return make_error(at + "/optimizer.bin: truncated");
  uint64_t n;
  std::memcpy(&c.opt.t, opt.data(), 8);
  std::memcpy(&n, opt.data() + 8, 8);
  if (opt.size() != 16 + n * 8) return make_error(at + "/optimizer.bin: " + std::to_string(opt.size()) + " bytes, expected " + std::to_string(16 + n * 8));
  c.opt.m.resize(n);
  c.opt.v.resize(n);
  std::memcpy(c.opt.m.data(), opt.data() + 16, n * 4);
  std::memcpy(c.opt.v.data(), opt.data() + 16 + n * 4, n * 4);
  return c;
}

}  // namespace corral
