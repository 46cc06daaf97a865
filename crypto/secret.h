// Secret values: raw subject identifiers and key material.
//
// A SecretBytes never prints itself, never appears in a Status message, and can be read only
// through RevealSecret(). That one function is the single, greppable door to raw personal
// data and keys in this code base: `git grep RevealSecret` lists every place that touches them.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace lethe {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes&) = default;
  SecretBytes(SecretBytes&&) noexcept = default;
  SecretBytes& operator=(SecretBytes&&) noexcept = default;
  ~SecretBytes();  // wipes the buffer

  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  bool operator==(const SecretBytes& o) const;  // constant time

  friend std::string_view RevealSecret(const SecretBytes& s);
  // Printing shows only the length, so a stray log line cannot leak the value.
  friend std::ostream& operator<<(std::ostream& os, const SecretBytes& s) {
    return os << "<secret:" << s.bytes_.size() << " bytes>";
  }

 private:
  std::string bytes_;
};

// The only way to read a secret's bytes.
std::string_view RevealSecret(const SecretBytes& s);

}  // namespace lethe
