// What may stand in clear in the ledger (ledger/FORMAT.md §2.1): the one rule for free text
// that lethed applies to what callers send and verifiers apply to what the log holds, and the
// form every sealed field must have. No raw subject identifier is ever written in clear;
// these rules are how a verifier tells, mechanically, that none was.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lethe::audit {

// Free text in clear (ConsentChanged.source, AgentKeyRevoked.reason, Receipt.error): valid
// UTF-8 of at most `max_bytes` bytes with no control character, and nothing that looks like
// an identifier of a person: no '@' (e-mail addresses), and no run of 7 or more digits, where
// one of the characters ` .-/()+` between two digits does not end the run (phone numbers,
// numeric ids); a date written YYYY-MM-DD is not a run. Returns why `text` breaks the rule,
// without quoting it, or "" when it keeps it.
std::string FreeTextProblem(std::string_view text, size_t max_bytes);

// The longest free text any of those fields may hold.
inline constexpr size_t kMaxFreeTextBytes = 500;

// A sealed field (AES-256-GCM: nonce(12) || ciphertext || tag(16)) must be at least 28 bytes
// and must not read as text: all of its bytes printable ASCII, tab, CR or LF. Ciphertext
// passes the second test with probability below 2^-38 for 28 bytes, and less for longer.
// Returns why `sealed` cannot be one, or "".
std::string SealedProblem(std::string_view sealed);

}  // namespace lethe::audit
