#include "crypto/secret.h"

#include <openssl/crypto.h>

namespace lethe {

SecretBytes::~SecretBytes() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

bool SecretBytes::operator==(const SecretBytes& o) const {
  return bytes_.size() == o.bytes_.size() &&
         CRYPTO_memcmp(bytes_.data(), o.bytes_.data(), bytes_.size()) == 0;
}

std::string_view RevealSecret(const SecretBytes& s) { return s.bytes_; }

}  // namespace lethe
