// Pull: URL parsing, the Hugging Face (OCI registry) manifest, resumable download, checks.
#include "store/pull.h"

#include <httplib.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gguf/gguf_file.h"
#include "store/json_io.h"
#include "store/sha256.h"
#include "util/text.h"

namespace nibble {

namespace fs = std::filesystem;

namespace {

struct Url {
  std::string scheme_host_port;  // "https://hf.co:443"
  std::string path;              // "/v2/..."
};

Result<Url> parse_url(const std::string& url) {
  const size_t s = url.find("://");
  if (s == std::string::npos || (url.compare(0, s, "http") != 0 && url.compare(0, s, "https") != 0)) {
    return make_error(ErrorCode::kInvalidArgument, "'%s' is not an http:// or https:// URL", printable(url, 120).c_str());
  }
  const size_t p = url.find('/', s + 3);
  Url u;
  u.scheme_host_port = url.substr(0, p);
  u.path = p == std::string::npos ? "/" : url.substr(p);
  if (u.scheme_host_port.size() <= s + 3) {
    return make_error(ErrorCode::kInvalidArgument, "URL '%s' has no host", printable(url, 120).c_str());
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return make_error(ErrorCode::kInvalidArgument, "URL '%s' contains spaces or control characters", printable(url, 120).c_str());
    }
  }
  return u;
}

std::unique_ptr<httplib::Client> make_client(const Url& u) {
  auto c = std::make_unique<httplib::Client>(u.scheme_host_port);
  c->set_follow_location(true);
  c->set_connection_timeout(30, 0);
  c->set_read_timeout(60, 0);
  return c;
}

std::string http_error(const httplib::Result& r) {
  return httplib::to_string(r.error());
}

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The Ollama-style resolution of hf.co/ORG/REPO[:QUANT]: the registry manifest's model layer.
struct HfModel {
  std::string blob_url;
  std::string sha256;
  uint64_t size = 0;
  std::string name;  // hf.co/ORG/REPO:QUANT
};

Result<HfModel> resolve_hf(const std::string& source, const std::string& base_url) {
  std::string rest = source.substr(source.find('/') + 1);  // ORG/REPO[:QUANT]
  std::string tag = "latest";
  if (const size_t c = rest.rfind(':'); c != std::string::npos) {
    tag = rest.substr(c + 1);
    rest = rest.substr(0, c);
  }
  const size_t slash = rest.find('/');
  if (slash == std::string::npos || rest.find('/', slash + 1) != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument, "'%s' is not hf.co/ORG/REPO[:QUANT]", printable(source, 120).c_str());
  }
  HfModel m;
  NIBBLE_ASSIGN_OR_RETURN(m.name, normalize_model_name("hf.co/" + rest + ":" + tag));
  NIBBLE_ASSIGN_OR_RETURN(Url base, parse_url(base_url));
  std::string prefix = base.path == "/" ? "" : base.path;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  const std::string manifest_path = prefix + "/v2/" + rest + "/manifests/" + tag;
  auto cli = make_client(base);
  auto r = cli->Get(manifest_path, httplib::Headers{{"Accept", "application/vnd.docker.distribution.manifest.v2+json"}});
  if (!r) {
    return make_error(ErrorCode::kIo, "cannot reach %s%s: %s", base.scheme_host_port.c_str(),
                      printable(manifest_path, 200).c_str(), http_error(r).c_str());
  }
  if (r->status == 404) {
    return make_error(ErrorCode::kNotFound, "%s has no GGUF '%s' (HTTP 404 for the manifest; check the repository and quantization)",
                      printable("hf.co/" + rest, 120).c_str(), printable(tag, 40).c_str());
  }
  if (r->status != 200) {
    return make_error(ErrorCode::kIo, "HTTP %d for %s%s", r->status, base.scheme_host_port.c_str(), printable(manifest_path, 200).c_str());
  }
  if (r->body.size() > (1u << 20)) return make_error(ErrorCode::kFormat, "the manifest of %s is larger than 1 MiB", m.name.c_str());
  NIBBLE_ASSIGN_OR_RETURN(auto j, parse_json_limited(r->body, "manifest of " + m.name));
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_array()) {
    return make_error(ErrorCode::kFormat, "the manifest of %s has no layers list", m.name.c_str());
  }
  for (const auto& l : j["layers"]) {
    if (!l.is_object() || l.value("mediaType", "") != "application/vnd.ollama.image.model") continue;
    const std::string digest = l.value("digest", "");
    if (digest.rfind("sha256:", 0) != 0 || !is_hex64(digest.substr(7))) {
      return make_error(ErrorCode::kFormat, "the manifest of %s has a model layer without a sha256 digest", m.name.c_str());
    }
    m.sha256 = digest.substr(7);
    if (l.contains("size") && l["size"].is_number_unsigned()) m.size = l["size"].get<uint64_t>();
    m.blob_url = base.scheme_host_port + prefix + "/v2/" + rest + "/blobs/" + digest;
    return m;
  }
  return make_error(ErrorCode::kFormat, "the manifest of %s lists no model (GGUF) layer", m.name.c_str());
}

Result<std::string> hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kIo, "cannot read %s", printable(path, 200).c_str());
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex_digest();
}

// Downloads url into `partial`, resuming from its current size when the server honours Range.
Status download(const std::string& url, const std::string& partial, uint64_t expected_size,
                const std::function<void(uint64_t, uint64_t)>& progress, uint64_t* resumed_from) {
  NIBBLE_ASSIGN_OR_RETURN(Url u, parse_url(url));
  std::error_code ec;
  uint64_t have = fs::exists(partial, ec) ? fs::file_size(partial, ec) : 0;
  if (ec) have = 0;
  if (expected_size > 0 && have > expected_size) have = 0;  // not ours: start over
  *resumed_from = have;
  httplib::Headers headers;
  if (have > 0) headers.emplace("Range", "bytes=" + std::to_string(have) + "-");
  std::FILE* f = nullptr;
  uint64_t total = expected_size, done = have;
  int status = 0;
  std::string open_error;
  auto cli = make_client(u);
  auto r = cli->Get(
      u.path, headers,
      [&](const httplib::Response& resp) {
        status = resp.status;
        if (status == 206 && have > 0) {
          f = std::fopen(partial.c_str(), "ab");
        } else if (status == 200) {
          have = 0;  // no resume: the whole file again
          *resumed_from = 0;
          done = 0;
          f = std::fopen(partial.c_str(), "wb");
        } else {
          return false;
        }
        if (f == nullptr) {
          open_error = std::strerror(errno);
          return false;
        }
        if (resp.has_header("Content-Length")) {
          const uint64_t n = std::strtoull(resp.get_header_value("Content-Length").c_str(), nullptr, 10);
          if (total == 0) total = have + n;
        }
        return true;
      },
      [&](const char* data, size_t n) {
        if (std::fwrite(data, 1, n, f) != n) {
          open_error = std::strerror(errno);
          return false;
        }
        done += n;
        if (expected_size > 0 && done > expected_size) {
          open_error = "the server sent more bytes than the manifest says";
          return false;
        }
        if (progress) progress(done, total);
        return true;
      });
  if (f != nullptr && std::fclose(f) != 0 && open_error.empty()) open_error = std::strerror(errno);
  if (!open_error.empty()) {
    return make_error(ErrorCode::kIo, "writing %s: %s", printable(partial, 200).c_str(), open_error.c_str());
  }
  if (status == 416 && have > 0) return ok_status();  // already complete; the sha256 check decides
  if (status != 0 && status != 200 && status != 206) {
    return make_error(ErrorCode::kIo, "HTTP %d for %s", status, printable(url, 200).c_str());
  }
  if (!r) {
    return make_error(ErrorCode::kIo, "download of %s stopped after %llu bytes: %s (run the same pull again to resume)",
                      printable(url, 200).c_str(), static_cast<unsigned long long>(done), http_error(r).c_str());
  }
  return ok_status();
}

}  // namespace

Result<PullResult> pull_model(const ModelStore& store, const PullOptions& o) {
  std::string url, expected = o.sha256, name = o.name;
  uint64_t expected_size = 0;
  for (char& c : expected) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!expected.empty() && !is_hex64(expected)) {
    return make_error(ErrorCode::kInvalidArgument, "--sha256 '%s' is not 64 hex digits", printable(o.sha256, 80).c_str());
  }
  if (o.source.rfind("hf.co/", 0) == 0 || o.source.rfind("huggingface.co/", 0) == 0) {
    std::string base = o.hf_base_url;
    if (base.empty()) {
      const char* env = std::getenv("NIBBLE_HF_BASE_URL");
      base = env != nullptr && *env != '\0' ? env : "https://hf.co";
    }
    NIBBLE_ASSIGN_OR_RETURN(HfModel m, resolve_hf(o.source, base));
    url = m.blob_url;
    expected = m.sha256;
    expected_size = m.size;
    if (name.empty()) name = m.name;
  } else {
    NIBBLE_ASSIGN_OR_RETURN(Url u, parse_url(o.source));
    url = o.source;
    if (name.empty()) {
      std::string file = u.path.substr(u.path.rfind('/') + 1);
      if (const size_t q = file.find('?'); q != std::string::npos) file = file.substr(0, q);
      if (file.size() > 5 && file.compare(file.size() - 5, 5, ".gguf") == 0) file = file.substr(0, file.size() - 5);
      name = file;
    }
  }
  auto normalized = normalize_model_name(name);
  if (!normalized.ok()) {
    return make_error(ErrorCode::kInvalidArgument, "%s (give a name with --name)", normalized.error().message.c_str());
  }
  if (*normalized == ModelStore::kBundledName) {
    return make_error(ErrorCode::kInvalidArgument, "'%s' is the bundled model's name; give another with --name", ModelStore::kBundledName);
  }
  std::error_code ec;
  fs::create_directories(store.blobs_dir(), ec);
  if (ec) {
    return make_error(ErrorCode::kIo, "cannot create %s: %s", printable(store.blobs_dir(), 200).c_str(), ec.message().c_str());
  }
  const std::string key = expected.empty() ? "url-" + sha256_hex(url).substr(0, 32) : "sha256-" + expected;
  const std::string partial = store.blobs_dir() + "/" + key + "-partial";
  PullResult res;
  const std::string final_if_known = store.blobs_dir() + "/sha256-" + expected;
  if (!expected.empty() && fs::exists(final_if_known, ec)) {
    res.sha256 = expected;  // already downloaded (another name, or a repeated pull)
  } else {
    NIBBLE_TRY(download(url, partial, expected_size, o.progress, &res.resumed_from));
    NIBBLE_ASSIGN_OR_RETURN(res.sha256, hash_file(partial));
    if (!expected.empty() && res.sha256 != expected) {
      fs::remove(partial, ec);
      return make_error(ErrorCode::kFormat,
                        "the download of %s has sha256 %s, expected %s; it was deleted (run the pull again)",
                        printable(url, 200).c_str(), res.sha256.c_str(), expected.c_str());
    }
    auto gguf = GgufFile::open(partial);
    if (!gguf.ok()) {
      fs::remove(partial, ec);
      return make_error(ErrorCode::kFormat, "the download of %s is not a usable GGUF: %s", printable(url, 200).c_str(),
                        gguf.error().message.c_str());
    }
    fs::rename(partial, store.blobs_dir() + "/sha256-" + res.sha256, ec);
    if (ec) return make_error(ErrorCode::kIo, "cannot move the download into place: %s", ec.message().c_str());
  }
  const std::string blob = store.blobs_dir() + "/sha256-" + res.sha256;
  res.bytes = fs::file_size(blob, ec);
  StoreEntry e;
  e.name = *normalized;
  e.model_path = blob;
  e.from = o.source;
  NIBBLE_TRY(store.put(e));
  NIBBLE_ASSIGN_OR_RETURN(res.entry, store.get(e.name));
  return res;
}

}  // namespace nibble
