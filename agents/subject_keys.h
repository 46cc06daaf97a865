// SubjectKeys: the subject's record keys (compacted topics) and object key prefixes (S3) built
// from a policy template such as "user:{user_id}:{email}" and the command's opened identities.
// The raw identity values go into the keys: call it only where a key is used at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agents/command_verifier.h"

namespace lethe::agents {

// Every key `key_template` gives for the subject: one per combination of the values of the
// identity types in `types` (the template's, in first-use order). Empty when the command
// lacks one of those types, or for a template policies::Policy would not accept (a stray
// brace).
std::vector<std::string> SubjectKeys(std::string_view key_template, const std::vector<std::string>& types,
                                     const OpenedIdentities& ids);

}  // namespace lethe::agents
