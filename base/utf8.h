// UTF-8 well-formedness, as every parser of outside text here needs it.
#pragma once

#include <string_view>

namespace lethe {

// Whether `s` is well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
// U+10FFFF, no truncated sequence.
bool IsValidUtf8(std::string_view s);

}  // namespace lethe
