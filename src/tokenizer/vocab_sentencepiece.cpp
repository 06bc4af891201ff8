// Importer for SentencePiece model files (tokenizer.model): a hand-written reader of the protobuf
// wire format, just enough for ModelProto. Every varint, length and field is checked against the
// bytes that hold it, so a truncated or hostile file gives a one-line error, never a crash.
// Only BPE models are accepted (Gemma's); unigram models and normalisers nibble does not
// implement are refused with kUnsupported.
//
// Fields read (sentencepiece_model.proto):
//   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, 1 NORMAL .. 6 BYTE)
//   TrainerSpec     3 model_type (1 UNIGRAM, 2 BPE), 24 treat_whitespace_as_suffix,
//                   35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//                   4 remove_extra_whitespaces, 5 escape_whitespaces
// Everything else is skipped by wire type.
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"
#include "util/mapped_file.h"

namespace nibble {

namespace {

using ull = unsigned long long;

constexpr uint64_t kMaxModelBytes = 1ull << 30;  // real Gemma models are ~5 MB

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct ProtoField {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;     // kVarint
  uint32_t fixed32 = 0;    // kFixed32
  std::string_view bytes;  // kLengthDelimited
  uint64_t offset = 0;     // absolute offset of the field's key, for messages
};

// Reads the fields of one message. `base` is the message's absolute offset in the file.
class ProtoReader {
 public:
  ProtoReader(std::string_view data, uint64_t base, const std::string& name, const char* message)
      : data_(data), base_(base), name_(name), message_(message) {}

  bool done() const { return pos_ >= data_.size(); }

  Status next(ProtoField* f) {
    f->offset = base_ + pos_;
    uint64_t key = 0;
    NIBBLE_TRY(read_varint(&key));
    f->number = static_cast<uint32_t>(key >> 3);
    f->wire = static_cast<uint32_t>(key & 7);
    if (f->number == 0 || (key >> 3) > 0x1FFFFFFF) {
      return error(f->offset, "invalid field number %llu", static_cast<ull>(key >> 3));
    }
    switch (f->wire) {
      case kVarint:
        return read_varint(&f->varint);
      case kFixed64:
        return skip(8, f);
      case kFixed32: {
        if (data_.size() - pos_ < 4) return truncated(f, 4);
        std::memcpy(&f->fixed32, data_.data() + pos_, 4);  // little-endian on every target
        pos_ += 4;
        return ok_status();
      }
      case kLengthDelimited: {
        uint64_t len = 0;
        NIBBLE_TRY(read_varint(&len));
        if (len > data_.size() - pos_) return truncated(f, len);
        f->bytes = data_.substr(pos_, len);
        pos_ += len;
        return ok_status();
      }
      default:
        return error(f->offset, "field %u has wire type %u, which SentencePiece never writes",
                     f->number, f->wire);
    }
  }

  template <typename... Args>
  Error error(uint64_t offset, const char* fmt, Args... args) const {
    std::string prefix = name_ + ": " + message_ + " at byte " + std::to_string(offset) + ": ";
    Error e = make_error(ErrorCode::kFormat, fmt, args...);
    e.message = prefix + e.message;
    return e;
  }

 private:
  Status read_varint(uint64_t* out) {
    uint64_t v = 0;
    const uint64_t start = base_ + pos_;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return error(start, "varint runs past the end of the message");
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return ok_status();
      }
    }
    return error(start, "varint longer than 10 bytes");
  }
  Status skip(uint64_t n, ProtoField* f) {
    if (data_.size() - pos_ < n) return truncated(f, n);
    pos_ += n;
    return ok_status();
  }
  Error truncated(const ProtoField* f, uint64_t len) const {
    return error(f->offset, "field %u needs %llu bytes but the message has %llu left", f->number,
                 static_cast<ull>(len), static_cast<ull>(data_.size() - pos_));
  }

  std::string_view data_;
  size_t pos_ = 0;
  uint64_t base_;
  const std::string& name_;
  const char* message_;
};

// Checks a field's wire type.
Status expect_wire(const ProtoReader& r, const ProtoField& f, uint32_t wire, const char* what) {
  if (f.wire != wire) {
    return r.error(f.offset, "field %u (%s) has wire type %u, expected %u", f.number, what, f.wire,
                   wire);
  }
  return ok_status();
}

// A varint that holds a protobuf int32 (negative values are sign-extended to 64 bits).
Status read_int32(const ProtoReader& r, const ProtoField& f, const char* what, int32_t* out) {
  NIBBLE_TRY(expect_wire(r, f, kVarint, what));
  const auto v = static_cast<int64_t>(f.varint);
  if (v < INT32_MIN || v > INT32_MAX) {
    return r.error(f.offset, "%s = %lld does not fit in int32", what, static_cast<long long>(v));
  }
  *out = static_cast<int32_t>(v);
  return ok_status();
}

struct SpPiece {
  std::string_view piece;
  float score = 0.0f;
  int32_t type = 1;  // NORMAL
};

struct SpModel {
  std::vector<SpPiece> pieces;
  int32_t model_type = 1;  // UNIGRAM is the proto default
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string_view normalizer_name;
  size_t charsmap_bytes = 0;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

Status parse_piece(std::string_view bytes, uint64_t base, const std::string& name, size_t index,
                   SpPiece* out) {
  const std::string what = "piece " + std::to_string(index);
  ProtoReader r(bytes, base, name, what.c_str());
  bool has_piece = false;
  while (!r.done()) {
    ProtoField f;
    NIBBLE_TRY(r.next(&f));
    if (f.number == 1) {
      NIBBLE_TRY(expect_wire(r, f, kLengthDelimited, "piece"));
      out->piece = f.bytes;
      has_piece = true;
    } else if (f.number == 2) {
      NIBBLE_TRY(expect_wire(r, f, kFixed32, "score"));
      std::memcpy(&out->score, &f.fixed32, 4);
    } else if (f.number == 3) {
      NIBBLE_TRY(read_int32(r, f, "type", &out->type));
      if (out->type < 1 || out->type > 6) {
        return r.error(f.offset, "type %d is not a SentencePiece type (1 NORMAL .. 6 BYTE)",
                       out->type);
      }
    }
  }
  if (!has_piece || out->piece.empty()) {
    return r.error(base, "the piece string is missing or empty");
  }
  return ok_status();
}

Status parse_trainer_spec(std::string_view bytes, uint64_t base, const std::string& name,
                          SpModel* m) {
  ProtoReader r(bytes, base, name, "trainer_spec");
  while (!r.done()) {
    ProtoField f;
    NIBBLE_TRY(r.next(&f));
    switch (f.number) {
      case 3:
        NIBBLE_TRY(read_int32(r, f, "model_type", &m->model_type));
        break;
      case 24:
        NIBBLE_TRY(expect_wire(r, f, kVarint, "treat_whitespace_as_suffix"));
        m->treat_whitespace_as_suffix = f.varint != 0;
        break;
      case 35:
        NIBBLE_TRY(expect_wire(r, f, kVarint, "byte_fallback"));
        m->byte_fallback = f.varint != 0;
        break;
      case 40:
        NIBBLE_TRY(read_int32(r, f, "unk_id", &m->unk_id));
        break;
      case 41:
        NIBBLE_TRY(read_int32(r, f, "bos_id", &m->bos_id));
        break;
      case 42:
        NIBBLE_TRY(read_int32(r, f, "eos_id", &m->eos_id));
        break;
      case 43:
        NIBBLE_TRY(read_int32(r, f, "pad_id", &m->pad_id));
        break;
      default:
        break;
    }
  }
  return ok_status();
}

Status parse_normalizer_spec(std::string_view bytes, uint64_t base, const std::string& name,
                             SpModel* m) {
  ProtoReader r(bytes, base, name, "normalizer_spec");
  while (!r.done()) {
    ProtoField f;
    NIBBLE_TRY(r.next(&f));
    switch (f.number) {
      case 1:
        NIBBLE_TRY(expect_wire(r, f, kLengthDelimited, "name"));
        m->normalizer_name = f.bytes;
        break;
      case 2:
        NIBBLE_TRY(expect_wire(r, f, kLengthDelimited, "precompiled_charsmap"));
        m->charsmap_bytes = f.bytes.size();
        break;
      case 3:
        NIBBLE_TRY(expect_wire(r, f, kVarint, "add_dummy_prefix"));
        m->add_dummy_prefix = f.varint != 0;
        break;
      case 4:
        NIBBLE_TRY(expect_wire(r, f, kVarint, "remove_extra_whitespaces"));
        m->remove_extra_whitespaces = f.varint != 0;
        break;
      case 5:
        NIBBLE_TRY(expect_wire(r, f, kVarint, "escape_whitespaces"));
        m->escape_whitespaces = f.varint != 0;
        break;
      default:
        break;
    }
  }
  return ok_status();
}

Status parse_model(std::string_view bytes, const std::string& name, SpModel* m) {
  ProtoReader r(bytes, 0, name, "ModelProto");
  while (!r.done()) {
    ProtoField f;
    NIBBLE_TRY(r.next(&f));
    // Absolute offset of a length-delimited payload (f.bytes views into `bytes`).
    auto payload = [&] { return static_cast<uint64_t>(f.bytes.data() - bytes.data()); };
    if (f.number == 1) {
      NIBBLE_TRY(expect_wire(r, f, kLengthDelimited, "pieces"));
      SpPiece piece;
      NIBBLE_TRY(parse_piece(f.bytes, payload(), name, m->pieces.size(), &piece));
      m->pieces.push_back(piece);
    } else if (f.number == 2) {
      NIBBLE_TRY(expect_wire(r, f, kLengthDelimited, "trainer_spec"));
      NIBBLE_TRY(parse_trainer_spec(f.bytes, payload(), name, m));
    } else if (f.number == 3) {
      NIBBLE_TRY(expect_wire(r, f, kLengthDelimited, "normalizer_spec"));
      NIBBLE_TRY(parse_normalizer_spec(f.bytes, payload(), name, m));
    }
  }
  return ok_status();
}

}  // namespace

Result<Vocab> vocab_from_sentencepiece_bytes(std::string_view bytes, const std::string& name) {
  if (bytes.empty()) return make_error(ErrorCode::kFormat, "%s: empty file", name.c_str());
  SpModel m;
  NIBBLE_TRY(parse_model(bytes, name, &m));

  const size_t n = m.pieces.size();
  if (n == 0) {
    return make_error(ErrorCode::kFormat, "%s: no pieces (not a SentencePiece model?)",
                      name.c_str());
  }
  if (n > static_cast<size_t>(INT32_MAX)) {
    return make_error(ErrorCode::kFormat, "%s: %zu pieces, more than int32 ids allow", name.c_str(),
                      n);
  }
  if (m.model_type != 2) {
    static const char* kTypes[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    const char* t = m.model_type >= 1 && m.model_type <= 4 ? kTypes[m.model_type] : "?";
    return make_error(ErrorCode::kUnsupported,
                      "%s: model_type %d (%s) is not supported; nibble implements BPE models",
                      name.c_str(), m.model_type, t);
  }
  if (m.treat_whitespace_as_suffix) {
    return make_error(ErrorCode::kUnsupported, "%s: treat_whitespace_as_suffix is not supported",
                      name.c_str());
  }
  if (m.charsmap_bytes != 0) {
    return make_error(ErrorCode::kUnsupported,
                      "%s: normalizer '%s' has a %zu-byte precompiled charsmap; nibble does no "
                      "Unicode normalisation",
                      name.c_str(), printable(m.normalizer_name).c_str(), m.charsmap_bytes);
  }
  if (m.remove_extra_whitespaces) {
    return make_error(ErrorCode::kUnsupported,
                      "%s: normalizer removes extra whitespace; nibble does not", name.c_str());
  }
  if (!m.escape_whitespaces) {
    return make_error(ErrorCode::kUnsupported,
                      "%s: escape_whitespaces is off; nibble always writes spaces as U+2581",
                      name.c_str());
  }

  Vocab v;
  v.model = "gemma4";
  v.tokens.reserve(n);
  v.scores.reserve(n);
  v.types.reserve(n);
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const SpPiece& p = m.pieces[i];
    auto [it, inserted] = seen.emplace(p.piece, i);
    if (!inserted) {
      return make_error(ErrorCode::kFormat, "%s: piece '%s' appears twice (ids %zu and %zu)",
                        name.c_str(), printable(p.piece).c_str(), it->second, i);
    }
    v.tokens.emplace_back(p.piece);
    v.scores.push_back(p.score);
    v.types.push_back(p.type);  // SentencePiece's enum values are GGUF's token types
  }
  auto check_id = [&](int32_t id, const char* what) -> Status {
    if (id < -1 || id >= static_cast<int32_t>(n)) {
      return make_error(ErrorCode::kFormat, "%s: trainer_spec %s = %d is outside [-1, %zu)",
                        name.c_str(), what, id, n);
    }
    return ok_status();
  };
  NIBBLE_TRY(check_id(m.unk_id, "unk_id"));
  NIBBLE_TRY(check_id(m.bos_id, "bos_id"));
  NIBBLE_TRY(check_id(m.eos_id, "eos_id"));
  NIBBLE_TRY(check_id(m.pad_id, "pad_id"));
  v.unk_id = m.unk_id;
  v.bos_id = m.bos_id;
  v.eos_id = m.eos_id;
  v.pad_id = m.pad_id;
  v.add_bos = true;
  v.add_space_prefix = m.add_dummy_prefix;
  v.merges = derive_merges_from_scores(v);
  NIBBLE_TRY(validate_vocab(v, name));
  return v;
}

Result<Vocab> vocab_from_sentencepiece_model(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(std::string bytes, read_file_to_string(path, kMaxModelBytes));
  return vocab_from_sentencepiece_bytes(bytes, path);
}

}  // namespace nibble
