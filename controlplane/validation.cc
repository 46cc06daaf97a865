// The input rules of controlplane/validation.h.
#include "controlplane/validation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "audit/hygiene.h"
#include "base/status.h"

namespace lethe::controlplane {

absl::Status ValidateIdentities(const policies::Policy& policy,
                                const std::vector<SubjectIdentity>& ids,
                                std::string_view field_name) {
  const std::string list(field_name);
  if (ids.empty()) return absl::InvalidArgumentError(list + ": at least one identity is required");
  if (ids.size() > kMaxIdentities)
    return absl::InvalidArgumentError(
        absl::StrCat(list, ": at most ", kMaxIdentities, " identities, got ", ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string field = ids.size() == 1 && list == "identity" ? list : absl::StrCat(list, "[", i, "]");
    const auto& id = ids[i];
    if (id.type.empty()) return absl::InvalidArgumentError(field + ".type: empty identity type");
    // One rule for identity type names: the policy's ([a-z0-9_]+, checked by Policy::Parse).
    // A type is valid here exactly when the active policy declares it.
    if (!policy.HasIdentity(id.type))
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".type: unknown identity type \"", Quote(id.type, kMaxQuotedNameBytes),
          "\" (the policy declares: ", absl::StrJoin(policy.identities(), ", "), ")"));
    // Values are personal data: errors describe them, never quote them.
    if (RevealSecret(id.value).empty())
      return absl::InvalidArgumentError(field + ".value: empty identity value");
    if (RevealSecret(id.value).size() > kMaxIdentityValueBytes)
      return absl::InvalidArgumentError(absl::StrCat(field, ".value: longer than ",
                                                     kMaxIdentityValueBytes, " bytes (got ",
                                                     RevealSecret(id.value).size(), " bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SubjectIdentity>> NormalizeIdentities(
    const policies::Policy& policy, const std::vector<SubjectIdentity>& ids,
    std::string_view field_name) {
  LETHE_RETURN_IF_ERROR(ValidateIdentities(policy, ids, field_name));
  const std::string list(field_name);
  std::vector<SubjectIdentity> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    SecretBytes value(policy.Normalize(ids[i].type, RevealSecret(ids[i].value)));
    if (value.empty())
      return absl::InvalidArgumentError(
          absl::StrCat(ids.size() == 1 && list == "identity" ? list : absl::StrCat(list, "[", i, "]"),
                       ".value: empty once normalized (the policy trims identity type ",
                       ids[i].type, ")"));
    out.push_back(SubjectIdentity{ids[i].type, std::move(value)});
  }
  return out;
}

absl::Status CheckText(std::string_view field, std::string_view text, size_t max_bytes,
                       std::string_view hint) {
  const std::string f(field);
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(f, ": required (", Av(hint), ")"));
  if (text.size() > max_bytes)
    return absl::InvalidArgumentError(
        absl::StrCat(f, ": longer than ", max_bytes, " bytes (got ", text.size(), ")"));
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f)
      return absl::InvalidArgumentError(f + ": contains a control character");
  return absl::OkStatus();
}

absl::Status CheckClearText(std::string_view field, std::string_view text, size_t max_bytes,
                            std::string_view hint) {
  LETHE_RETURN_IF_ERROR(CheckText(field, text, max_bytes, hint));
  if (std::string why = audit::FreeTextProblem(text, max_bytes); !why.empty())
    return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": ", why, " (", Av(hint), ")"));
  return absl::OkStatus();
}

absl::Status ValidateErasureReason(std::string_view reason) {
  if (reason.size() > kMaxReasonBytes)
    return absl::InvalidArgumentError(
        absl::StrCat("reason: longer than ", kMaxReasonBytes, " bytes (got ", reason.size(), ")"));
  return absl::OkStatus();
}

absl::Status ValidateExtension(absl::Duration by, std::string_view reason) {
  if (by <= absl::ZeroDuration())
    return absl::InvalidArgumentError("extension_seconds: must be positive");
  if (by != absl::Seconds(absl::ToInt64Seconds(by)))
    return absl::InvalidArgumentError("extension_seconds: must be whole seconds");
  return CheckText("reason", reason, kMaxExtensionReasonBytes,
                   "GDPR Art. 12(3): the subject must be told why");
}

absl::Status ValidateExtensionSeconds(int64_t seconds) {
  if (seconds <= 0 || seconds > int64_t{10} * 365 * 86400)
    return absl::InvalidArgumentError("extension_seconds: must be positive and at most ten years");
  return absl::OkStatus();
}

absl::StatusOr<const policies::Purpose*> ValidatePurpose(const policies::Policy& policy,
                                                         std::string_view purpose) {
  const policies::Purpose* p = nullptr;
  std::vector<std::string> names;
  for (const auto& candidate : policy.purposes()) {
    names.push_back(candidate.name);
    if (candidate.name == purpose) p = &candidate;
  }
  if (purpose.empty()) return absl::InvalidArgumentError("purpose: required");
  if (p == nullptr)
    return absl::InvalidArgumentError(absl::StrCat(
        "purpose: unknown purpose \"",
        purpose.size() > kMaxQuotedNameBytes ? std::string(purpose.substr(0, kMaxQuotedNameBytes)) + "..."
                                             : std::string(purpose),
        "\" (the active policy declares: ", names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
  return p;
}

absl::Status ValidateConsentStatus(v1::ConsentStatus status) {
  if (status != v1::GRANTED && status != v1::WITHDRAWN)
    return absl::InvalidArgumentError("status: must be GRANTED or WITHDRAWN");
  return absl::OkStatus();
}

absl::Status ValidateConsentSource(std::string_view source) {
  return CheckClearText("source", source, kMaxConsentSourceBytes,
                        "where the change came from, e.g. signup-form-v3; no personal data");
}

absl::Status ValidateAgentDomain(const policies::Policy& policy, std::string_view domain) {
  if (policy.FindDomain(std::string(domain)) == nullptr)
    return absl::InvalidArgumentError("domain: \"" + Quote(domain) + "\" is not a domain of the active policy");
  return absl::OkStatus();
}

absl::StatusOr<AgentKeys> ParseAgentKeys(std::string_view pem) {
  auto key = crypto::Ed25519PublicKey::FromPem(pem);
  if (!key.ok())
    return absl::InvalidArgumentError("public_key_pem: " + std::string(key.status().message()));
  auto enc = crypto::X25519PublicKey::FromPem(pem);
  if (!enc.ok())
    return absl::InvalidArgumentError(
        "public_key_pem: holds no X25519 encryption key, which commands are sealed to (the .pub "
        "file of `lethectl keys generate` holds both keys; regenerate older agent keys)");
  return AgentKeys{std::move(*key), std::move(*enc)};
}

absl::Status ValidateRevocation(std::string_view domain, std::string_view key_id,
                                std::string_view reason) {
  if (domain.empty()) return absl::InvalidArgumentError("domain: required");
  if (key_id.size() != 16 || !std::all_of(key_id.begin(), key_id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      }))
    return absl::InvalidArgumentError("key_id: not a key id (16 lowercase hex characters)");
  if (!reason.empty())
    LETHE_RETURN_IF_ERROR(CheckClearText("reason", reason, kMaxRevocationReasonBytes, "why the key is revoked"));
  return absl::OkStatus();
}

absl::Status ValidatePolicySize(std::string_view yaml) {
  if (yaml.size() > kMaxPolicyBytes)
    return absl::InvalidArgumentError(
        absl::StrCat("yaml: longer than ", kMaxPolicyBytes, " bytes (got ", yaml.size(), ")"));
  return absl::OkStatus();
}

absl::Status ValidateRequestId(std::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("request_id: empty");
  if (id.size() != 32 || !std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      }))
    return absl::InvalidArgumentError("request_id: not a request id (32 lowercase hex characters)");
  return absl::OkStatus();
}

}  // namespace lethe::controlplane
