// mmap-backed read-only file.
#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nibble {

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the S_ISREG check below refuses it.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return make_error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "%s: cannot open: %s", path.c_str(), std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(ErrorCode::kIo, "%s: cannot stat: %s", path.c_str(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kIo, "%s: not a regular file", path.c_str());
  }
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return make_error(ErrorCode::kIo, "%s: mmap of %llu bytes failed: %s", path.c_str(),
                        static_cast<unsigned long long>(f->size_), std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::string> read_file_to_string(const std::string& path, uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return make_error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "%s: cannot open: %s",
                      path.c_str(), std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kIo, "%s: not a regular file", path.c_str());
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(ErrorCode::kNotFound, "%s: cannot open: %s", path.c_str(),
                      std::strerror(errno));
  }
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) return make_error(ErrorCode::kIo, "%s: cannot read size", path.c_str());
  if (static_cast<uint64_t>(size) > max_bytes) {
    return make_error(ErrorCode::kFormat, "%s: %lld bytes, more than the %llu allowed",
                      path.c_str(), static_cast<long long>(size),
                      static_cast<unsigned long long>(max_bytes));
  }
  in.seekg(0, std::ios::beg);
  std::string s(static_cast<size_t>(size), '\0');
  in.read(s.data(), size);
  if (!in) return make_error(ErrorCode::kIo, "%s: read failed", path.c_str());
  return s;
}

}  // namespace nibble
