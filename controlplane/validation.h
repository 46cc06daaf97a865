// The input rules for what callers send to the control plane: identity values and types,
// reasons, consent purpose/status/source, extensions, agent keys, request ids and sizes. Pure
// functions: each returns kInvalidArgument naming the field ("identities[1].value: ..."), and
// never quotes personal data (identity values are described, other values are cut short).
// RequestManager and the gRPC services call these before they touch any recorded state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/planner.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"

namespace lethe::controlplane {

inline constexpr size_t kMaxIdentityValueBytes = 1024;
inline constexpr size_t kMaxIdentities = 16;
inline constexpr size_t kMaxReasonBytes = 4096;
inline constexpr size_t kMaxExtensionReasonBytes = 1000;
inline constexpr size_t kMaxConsentSourceBytes = 256;
inline constexpr size_t kMaxPolicyBytes = 1 << 20;
inline constexpr size_t kMaxRevocationReasonBytes = 500;
// The longest identity type or purpose name quoted in an error message.
inline constexpr size_t kMaxQuotedNameBytes = 64;
// gRPC message limits: the largest request is a policy; the largest answer a certificate.
inline constexpr size_t kMaxGrpcReceiveBytes = 2 << 20;
inline constexpr size_t kMaxGrpcSendBytes = 64 << 20;

// 1..kMaxIdentities identities, each of a type the policy declares (the policy's own rule
// for identity type names, applied when it was parsed, is the only one) with a value of
// 1..kMaxIdentityValueBytes bytes. `field_name` names the list in errors ("identities", or
// "identity" for a single one, which is then not indexed).
absl::Status ValidateIdentities(const policies::Policy& policy,
                                const std::vector<SubjectIdentity>& ids,
                                std::string_view field_name = "identities");

// ValidateIdentities, then each value with its type's normalizers applied
// (policies::Policy::Normalize): the form lethed tokenizes, seals and plans with, so that
// "Alice@Example.com" and "alice@example.com" are one subject under a type normalized with
// lowercase. A value that normalizes to nothing (only white space, under trim) is refused.
absl::StatusOr<std::vector<SubjectIdentity>> NormalizeIdentities(
    const policies::Policy& policy, const std::vector<SubjectIdentity>& ids,
    std::string_view field_name = "identities");

// Operator-supplied free text: 1..max_bytes, single-line, no control characters. `hint`
// says what the field is for in the "required" error.
absl::Status CheckText(std::string_view field, std::string_view text, size_t max_bytes,
                       std::string_view hint);
// CheckText plus audit/hygiene.h's rule for text the ledger holds in clear (which every
// verifier checks): nothing that looks like a person's identifier.
absl::Status CheckClearText(std::string_view field, std::string_view text, size_t max_bytes,
                            std::string_view hint);

// An erasure's reason: optional, at most kMaxReasonBytes (it is sealed, never in clear).
absl::Status ValidateErasureReason(std::string_view reason);

// A deadline extension: positive whole seconds, and a reason (sealed) for the subject.
absl::Status ValidateExtension(absl::Duration by, std::string_view reason);
// The wire form of an extension (gRPC extension_seconds): positive, at most ten years.
absl::Status ValidateExtensionSeconds(int64_t seconds);

// A consent change's purpose: one the policy declares. Returns it.
absl::StatusOr<const policies::Purpose*> ValidatePurpose(const policies::Policy& policy,
                                                         std::string_view purpose);
absl::Status ValidateConsentStatus(v1::ConsentStatus status);
// Where a consent change came from: clear text in the ledger, so no personal data.
absl::Status ValidateConsentSource(std::string_view source);

// An agent enrolment: a domain of the policy, and a PEM with both of the agent's keys.
struct AgentKeys {
  crypto::Ed25519PublicKey signing;
  crypto::X25519PublicKey encryption;
};
absl::Status ValidateAgentDomain(const policies::Policy& policy, std::string_view domain);
absl::StatusOr<AgentKeys> ParseAgentKeys(std::string_view pem);
// A key revocation: a domain, a key id (16 lowercase hex characters), an optional reason.
absl::Status ValidateRevocation(std::string_view domain, std::string_view key_id,
                                std::string_view reason);

// A policy document's size (its content is checked by policies::Policy::Parse).
absl::Status ValidatePolicySize(std::string_view yaml);

// A request id: 32 lowercase hex characters.
absl::Status ValidateRequestId(std::string_view id);

}  // namespace lethe::controlplane
