#include "audit/hygiene.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace lethe::audit {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool JoinsDigits(char c) {
  return c == ' ' || c == '.' || c == '-' || c == '/' || c == '(' || c == ')' || c == '+';
}

// Whether text[i..] starts a date YYYY-MM-DD not preceded or followed by a digit.
bool IsoDateAt(std::string_view t, size_t i) {
  if (i + 10 > t.size() || (i > 0 && IsDigit(t[i - 1])) || (i + 10 < t.size() && IsDigit(t[i + 10])))
    return false;
  for (size_t k = 0; k < 10; ++k) {
    const bool dash = k == 4 || k == 7;
    if (dash ? t[i + k] != '-' : !IsDigit(t[i + k])) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b(k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  if (cp >= 0x80 && cp <= 0x9F) return 0;  // C1 controls
  return n;
}

}  // namespace

std::string FreeTextProblem(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) return absl::StrCat("longer than ", max_bytes, " bytes");
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8Length(text, i);
    if (n == 0) return "not valid UTF-8 text";
    if (n == 1 && (static_cast<unsigned char>(text[i]) < 0x20 || text[i] == 0x7F))
      return "contains a control character";
    i += n;
  }
  if (text.find('@') != std::string_view::npos)
    return "contains '@': free text must not hold an e-mail address (or anything like one)";
  size_t run = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (IsoDateAt(text, i)) {
      run = 0;
      i += 9;
      continue;
    }
    if (IsDigit(text[i])) {
      if (++run >= 7)
        return "contains 7 or more digits in a row: free text must not hold a phone number or "
               "a numeric identifier (or anything like one)";
    } else if (!(run > 0 && JoinsDigits(text[i]) && i + 1 < text.size() && IsDigit(text[i + 1]))) {
      run = 0;
    }
  }
  return "";
}

std::string SealedProblem(std::string_view sealed) {
  if (sealed.size() < 28)
    return absl::StrCat("is ", sealed.size(), " bytes, shorter than any AES-256-GCM blob (28)");
  for (char c : sealed) {
    const auto u = static_cast<unsigned char>(c);
    if (!((u >= 0x20 && u <= 0x7E) || u == '\t' || u == '\r' || u == '\n')) return "";
  }
  return "reads as plain text, not as ciphertext";
}

}  // namespace lethe::audit
