// Test data shared by the Merkle tests: the leaves of the RFC 6962 / transparency-dev test
// tree, whose roots and proofs tests/testdata/rfc9162 holds.
#pragma once

#include <string>
#include <vector>

namespace lethe::testing {

// Its eight leaves, in order.
inline std::vector<std::string> Rfc6962TestLeaves() {
  return {
      std::string(),
      std::string(1, '\x00'),
      "\x10",
      "\x20\x21",
      "\x30\x31",
      "\x40\x41\x42\x43",
      "\x50\x51\x52\x53\x54\x55\x56\x57",
      "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
  };
}

}  // namespace lethe::testing
