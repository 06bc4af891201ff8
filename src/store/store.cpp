// ModelStore: manifests on disk, names, the bundled entry.
#include "store/store.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <sys/stat.h>

#include "store/json_io.h"
#include "util/atomic_file.h"
#include "util/json_brief.h"
#include "util/text.h"

namespace nibble {

namespace fs = std::filesystem;

Result<std::string> read_small_file(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return make_error(ErrorCode::kInvalidArgument, "'%s' is a folder, not a file", printable(path, 200).c_str());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(ErrorCode::kNotFound, "cannot open '%s': %s", printable(path, 200).c_str(),
                      std::strerror(errno));
  }
  std::string s;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    s.append(buf, static_cast<size_t>(in.gcount()));
    if (s.size() > max_bytes) {
      return make_error(ErrorCode::kOutOfRange, "'%s' is larger than %zu bytes", printable(path, 200).c_str(), max_bytes);
    }
  }
  return s;
}

std::string utc_now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

bool valid_part(const std::string& p) {
  if (p.empty() || p.size() > 80) return false;
  if (!std::isalnum(static_cast<unsigned char>(p[0]))) return false;
  for (char c : p) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace

Result<std::string> normalize_model_name(const std::string& name) {
  if (name.empty()) return make_error(ErrorCode::kInvalidArgument, "the model name is empty");
  if (name.size() > 200) {
    return make_error(ErrorCode::kInvalidArgument, "model name '%s' is longer than 200 characters",
                      printable(name, 40).c_str());
  }
  std::string base = name, tag = "latest";
  const size_t colon = name.rfind(':');
  if (colon != std::string::npos && name.find('/', colon) == std::string::npos) {
    base = name.substr(0, colon);
    tag = name.substr(colon + 1);
  }
  auto err = [&](const char* why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "model name '%s' is not valid: %s (names look like 'model', 'model:tag' or "
                      "'namespace/model:tag'; letters, digits, '.', '_', '-')",
                      printable(name, 80).c_str(), why);
  };
  if (!valid_part(tag)) return err("bad tag");
  size_t start = 0;
  int parts = 0;
  while (true) {
    const size_t slash = base.find('/', start);
    const std::string part = base.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!valid_part(part)) return err("a part is empty or has a character that is not allowed");
    if (++parts > 4) return err("more than 4 parts");
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return base + ":" + tag;
}

Result<ChatTemplate> StoreEntry::chat_template(const ChatTemplate& gguf_template) const {
  if (template_text.empty()) return gguf_template;
  return ChatTemplate::from_go_template(template_text);
}

ModelStore ModelStore::open_default(const std::string& bundled_path) {
  const char* home = std::getenv("NIBBLE_HOME");
  if (home != nullptr && *home != '\0') return ModelStore(home, bundled_path);
  const char* user = std::getenv("HOME");
  return ModelStore(std::string(user != nullptr && *user != '\0' ? user : ".") + "/.nibble", bundled_path);
}

ModelStore::ModelStore(std::string home, std::string bundled_path)
    : home_(std::move(home)), bundled_path_(std::move(bundled_path)) {}

StoreEntry ModelStore::bundled_entry() const {
  StoreEntry e;
  e.name = kBundledName;
  e.model_path = bundled_path_;
  e.from = bundled_path_;
  e.bundled = true;
  struct stat st{};
  if (::stat(bundled_path_.c_str(), &st) == 0) {
    const std::time_t tt = st.st_mtime;
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    e.created = buf;
  }
  return e;
}

Result<std::string> ModelStore::manifest_path(const std::string& normalized) const {
  const size_t colon = normalized.rfind(':');
  return home_ + "/manifests/" + normalized.substr(0, colon) + "/" + normalized.substr(colon + 1) + ".json";
}

nlohmann::json ModelStore::entry_to_json(const StoreEntry& e) {
  nlohmann::json j;
  j["name"] = e.name;
  j["model"] = e.model_path;
  j["from"] = e.from;
  j["parameters"] = e.params.to_json();
  j["system"] = e.system;
  j["template"] = e.template_text;
  j["license"] = e.license;
  j["created"] = e.created;
  nlohmann::json msgs = nlohmann::json::array();
  for (const auto& m : e.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  j["messages"] = msgs;
  return j;
}

Result<StoreEntry> ModelStore::entry_from_json(const nlohmann::json& j, const std::string& where) {
  auto bad = [&](const char* field) {
    return make_error(ErrorCode::kFormat, "%s: field '%s' is missing or has the wrong type",
                      printable(where, 200).c_str(), field);
  };
  if (!j.is_object()) return make_error(ErrorCode::kFormat, "%s: not a JSON object", printable(where, 200).c_str());
  StoreEntry e;
  auto str = [&](const char* k, std::string& out, bool required) -> bool {
    auto it = j.find(k);
    if (it == j.end()) return !required;
    if (!it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  if (!str("name", e.name, true)) return bad("name");
  if (!str("model", e.model_path, true)) return bad("model");
  if (!str("from", e.from, false)) return bad("from");
  if (!str("system", e.system, false)) return bad("system");
  if (!str("template", e.template_text, false)) return bad("template");
  if (!str("license", e.license, false)) return bad("license");
  if (!str("created", e.created, false)) return bad("created");
  if (auto it = j.find("parameters"); it != j.end()) {
    auto p = ModelParams::from_json(*it);
    if (!p.ok()) return make_error(ErrorCode::kFormat, "%s: %s", printable(where, 200).c_str(), p.error().message.c_str());
    e.params = std::move(*p);
  }
  if (auto it = j.find("messages"); it != j.end()) {
    if (!it->is_array()) return bad("messages");
    for (const auto& m : *it) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !m["content"].is_string()) {
        return bad("messages");
      }
      e.messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>(), ""});
    }
  }
  return e;
}

std::vector<StoreEntry> ModelStore::list(std::vector<std::string>* problems) const {
  std::vector<StoreEntry> out{bundled_entry()};
  const fs::path root = fs::path(home_) / "manifests";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  std::vector<StoreEntry> found;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it.depth() > 5) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || it->path().extension() != ".json") continue;
    const std::string rel = fs::relative(it->path(), root, ec).string();
    const size_t slash = rel.rfind('/');
    if (slash == std::string::npos) continue;
    const std::string name = rel.substr(0, slash) + ":" + rel.substr(slash + 1, rel.size() - slash - 6);
    auto e = get(name);
    if (e.ok()) {
      found.push_back(std::move(*e));
    } else if (problems != nullptr) {
      problems->push_back(e.error().message);
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  out.insert(out.end(), found.begin(), found.end());
  return out;
}

bool ModelStore::exists(const std::string& name) const {
  auto n = normalize_model_name(name);
  if (!n.ok()) return false;
  if (*n == kBundledName) return true;
  std::error_code ec;
  return fs::is_regular_file(manifest_path(*n).value(), ec);
}

Result<StoreEntry> ModelStore::get(const std::string& name) const {
  NIBBLE_ASSIGN_OR_RETURN(std::string n, normalize_model_name(name));
  if (n == kBundledName) return bundled_entry();
  NIBBLE_ASSIGN_OR_RETURN(std::string path, manifest_path(n));
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return make_error(ErrorCode::kNotFound, "model '%s' is not in the store %s (see `nibble list`)",
                      printable(n, 80).c_str(), printable(home_, 200).c_str());
  }
  NIBBLE_ASSIGN_OR_RETURN(std::string text, read_small_file(path, 4u << 20));
  NIBBLE_ASSIGN_OR_RETURN(nlohmann::json j, parse_json_limited(text, path));
  NIBBLE_ASSIGN_OR_RETURN(StoreEntry e, entry_from_json(j, path));
  e.name = n;
  return e;
}

Status ModelStore::put(StoreEntry entry) const {
  NIBBLE_ASSIGN_OR_RETURN(entry.name, normalize_model_name(entry.name));
  if (entry.name == kBundledName) {
    return make_error(ErrorCode::kInvalidArgument, "'%s' is the bundled model's name; choose another", kBundledName);
  }
  if (entry.created.empty()) entry.created = utc_now_rfc3339();
  NIBBLE_ASSIGN_OR_RETURN(std::string path, manifest_path(entry.name));
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) {
    return make_error(ErrorCode::kIo, "cannot create the store folder %s: %s",
                      printable(fs::path(path).parent_path().string(), 200).c_str(), ec.message().c_str());
  }
  const std::string text = entry_to_json(entry).dump(2) + "\n";
  NIBBLE_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(path));
  NIBBLE_TRY(f.write(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  return f.commit();
}

Status ModelStore::remove(const std::string& name) const {
  NIBBLE_ASSIGN_OR_RETURN(std::string n, normalize_model_name(name));
  if (n == kBundledName) {
    return make_error(ErrorCode::kInvalidArgument, "the bundled model '%s' cannot be removed", kBundledName);
  }
  NIBBLE_ASSIGN_OR_RETURN(StoreEntry e, get(n));
  NIBBLE_ASSIGN_OR_RETURN(std::string path, manifest_path(n));
  std::error_code ec;
  if (!fs::remove(path, ec) || ec) {
    return make_error(ErrorCode::kIo, "cannot remove %s: %s", printable(path, 200).c_str(), ec.message().c_str());
  }
  // Tidy empty folders up to manifests/.
  for (fs::path d = fs::path(path).parent_path(); d != fs::path(home_) / "manifests"; d = d.parent_path()) {
    if (!fs::is_empty(d, ec) || ec || !fs::remove(d, ec)) break;
  }
  // A downloaded blob no other entry uses goes too.
  if (e.model_path.rfind(blobs_dir() + "/", 0) == 0) {
    bool used = false;
    for (const auto& other : list()) used = used || other.model_path == e.model_path;
    if (!used) fs::remove(e.model_path, ec);
  }
  return ok_status();
}

Status ModelStore::copy(const std::string& from, const std::string& to) const {
  NIBBLE_ASSIGN_OR_RETURN(StoreEntry e, get(from));
  NIBBLE_ASSIGN_OR_RETURN(std::string dst, normalize_model_name(to));
  e.name = dst;
  e.bundled = false;
  e.created = utc_now_rfc3339();
  return put(std::move(e));
}

Result<StoreEntry> ModelStore::resolve(const std::string& name_or_path) const {
  std::error_code ec;
  const bool looks_like_path = name_or_path.find(".gguf") != std::string::npos ||
                               name_or_path.rfind("/", 0) == 0 || name_or_path.rfind("./", 0) == 0 ||
                               name_or_path.rfind("../", 0) == 0;
  if (looks_like_path || (fs::is_regular_file(name_or_path, ec) && !exists(name_or_path))) {
    if (!fs::is_regular_file(name_or_path, ec)) {
      return make_error(ErrorCode::kNotFound, "model file '%s' does not exist", printable(name_or_path, 200).c_str());
    }
    StoreEntry e;
    e.name = fs::path(name_or_path).filename().string();
    e.model_path = name_or_path;
    e.from = name_or_path;
    return e;
  }
  return get(name_or_path);
}

}  // namespace nibble
