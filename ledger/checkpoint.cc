#include "ledger/checkpoint.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

namespace lethe::ledger {
namespace {
constexpr char kSigPrefix[] = "\xE2\x80\x94 ";  // em dash U+2014, space

std::string KeyIdBytes(uint32_t id) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((id >> (24 - 8 * i)) & 0xFF);
  return out;
}

// The next code point of `s` from `*i` (advanced past it); -1 for a malformed sequence
// (overlong, surrogate, beyond U+10FFFF or cut short).
int32_t NextCodePoint(std::string_view s, size_t* i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte((*i)++);
  if (c < 0x80) return c;
  int extra = 0;
  int32_t cp = 0;
  int32_t min = 0;
  if ((c & 0xE0) == 0xC0) {
    extra = 1, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    extra = 2, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    extra = 3, cp = c & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  for (int k = 0; k < extra; ++k) {
    if (*i >= s.size() || (byte(*i) & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (byte((*i)++) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  return cp;
}

// Go's unicode.IsSpace: the ASCII spaces, NEL, NBSP and the Unicode categories Z*.
bool IsUnicodeSpace(int32_t cp) {
  switch (cp) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

absl::StatusOr<Checkpoint> ParseBody(std::string_view body) {
  std::vector<absl::string_view> lines = absl::StrSplit(Av(body), '\n');
  // body ends with '\n', so the split yields a trailing empty piece.
  if (lines.size() < 4 || !lines.back().empty())
    return absl::InvalidArgumentError("checkpoint: expected origin, size and root lines");
  Checkpoint cp;
  cp.origin = std::string(lines[0]);
  if (cp.origin.empty()) return absl::InvalidArgumentError("checkpoint: empty origin line");
  if (!IsValidKeyName(cp.origin))
    return absl::InvalidArgumentError(
        "checkpoint: the origin is not a valid key name (UTF-8 without spaces or '+')");
  if (lines[1].empty() || (lines[1].size() > 1 && lines[1][0] == '0') ||
      lines[1].find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(lines[1], &cp.size))
    return absl::InvalidArgumentError("checkpoint: tree size is not a decimal number");
  auto root = crypto::FromBase64(std::string_view(lines[2].data(), lines[2].size()));
  if (!root.ok() || root->size() != 32)
    return absl::InvalidArgumentError("checkpoint: root is not a base64 32-byte hash");
  cp.root = *root;
  return cp;
}

struct SplitNote {
  std::string_view body;
  std::vector<std::string_view> signatures;
};

absl::StatusOr<SplitNote> Split(std::string_view note) {
  size_t sep = note.find("\n\n");
  if (sep == std::string_view::npos)
    return absl::InvalidArgumentError("signed note: no blank line before signatures");
  // The text is everything up to and including the first newline of "\n\n". Notes may hold
  // blank lines in the text; the signatures start after the LAST blank line.
  size_t last = note.rfind("\n\n");
  SplitNote out;
  out.body = note.substr(0, last + 1);
  std::string_view sigs = note.substr(last + 2);
  if (sigs.empty() || sigs.back() != '\n')
    return absl::InvalidArgumentError("signed note: signature block must end in a newline");
  for (absl::string_view line : absl::StrSplit(absl::string_view(sigs.data(), sigs.size() - 1), '\n'))
    out.signatures.emplace_back(line.data(), line.size());
  (void)sep;
  return out;
}
}  // namespace

bool IsValidKeyName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size();) {
    const int32_t cp = NextCodePoint(name, &i);
    if (cp < 0 || cp == '+' || IsUnicodeSpace(cp)) return false;
  }
  return true;
}

std::string CheckpointBody(const Checkpoint& cp) {
  return absl::StrCat(cp.origin, "\n", cp.size, "\n", crypto::Base64(cp.root), "\n");
}

uint32_t NoteKeyId(std::string_view key_name, const crypto::Ed25519PublicKey& key) {
  static constexpr char kType[2] = {'\n', 0x01};
  std::string h = crypto::Sha256Parts({key_name, std::string_view(kType, 2), key.raw()});
  return (static_cast<uint32_t>(static_cast<unsigned char>(h[0])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(h[1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(h[2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(h[3]));
}

std::string VerifierKey(std::string_view key_name, const crypto::Ed25519PublicKey& key) {
  return absl::StrCat(absl::string_view(key_name.data(), key_name.size()), "+",
                      absl::StrFormat("%08x", NoteKeyId(key_name, key)), "+",
                      crypto::Base64(std::string(1, '\x01') + key.raw()));
}

std::string SignCheckpoint(const Checkpoint& cp, const crypto::Ed25519PrivateKey& key) {
  std::string body = CheckpointBody(cp);
  std::string sig = KeyIdBytes(NoteKeyId(cp.origin, key.public_key())) + key.Sign(body);
  return absl::StrCat(body, "\n", kSigPrefix, cp.origin, " ", crypto::Base64(sig), "\n");
}

absl::StatusOr<Checkpoint> ParseCheckpointUnverified(std::string_view note) {
  LETHE_ASSIGN_OR_RETURN(SplitNote split, Split(note));
  return ParseBody(split.body);
}

absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note, std::string_view origin,
                                            const crypto::Ed25519PublicKey& key) {
  LETHE_ASSIGN_OR_RETURN(SplitNote split, Split(note));
  const std::string want_id = KeyIdBytes(NoteKeyId(origin, key));
  bool verified = false;
  for (std::string_view line : split.signatures) {
    if (line.substr(0, sizeof(kSigPrefix) - 1) != kSigPrefix)
      return absl::InvalidArgumentError("signed note: malformed signature line");
    line.remove_prefix(sizeof(kSigPrefix) - 1);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos)
      return absl::InvalidArgumentError("signed note: signature line lacks a key name");
    if (line.substr(0, sp) != origin) continue;  // someone else's signature (a witness, say)
    auto sig = crypto::FromBase64(line.substr(sp + 1));
    if (!sig.ok() || sig->size() < 4)
      return absl::InvalidArgumentError("signed note: signature is not base64");
    if (sig->substr(0, 4) != want_id) continue;
    if (!key.Verify(split.body, sig->substr(4)))
      return absl::PermissionDeniedError("checkpoint signature does not verify");
    verified = true;
  }
  if (!verified)
    return absl::PermissionDeniedError(
        absl::StrCat("checkpoint carries no signature by key ",
                     absl::string_view(origin.data(), origin.size()), " ", key.KeyId()));
  LETHE_ASSIGN_OR_RETURN(Checkpoint cp, ParseBody(split.body));
  if (cp.origin != origin)
    return absl::PermissionDeniedError("checkpoint origin is not " + std::string(origin));
  return cp;
}

}  // namespace lethe::ledger
