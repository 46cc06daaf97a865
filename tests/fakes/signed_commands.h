// Test helpers that build DeleteCommands as lethed does (controlplane/request_manager.cc,
// RequestManager::MakeCommand): identities serialized as SealedIdentities and sealed to the
// agent's X25519 key, the command signed in a SignedEnvelope by the control plane's Ed25519
// key. Each step is a separate function so that a test can spoil exactly one of them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "lethe/v1/messages.pb.h"
#include "proto/envelope.h"

namespace lethe::fakes {

struct CommandSpec {
  std::string command_id = "0123456789abcdef0123456789abcdef";
  std::string request_id = "fedcba9876543210fedcba9876543210";
  std::string domain = "shop";
  std::string domain_policy_hash = std::string(32, '\x11');
  absl::Time issued_at = absl::FromUnixSeconds(1'700'000'000);
  absl::Duration ttl = absl::Hours(1);
  std::vector<std::pair<std::string, std::string>> identities = {{"email", "alice@example.com"}};
};

// The serialized SealedIdentities of `ids`.
inline std::string SerializeIdentities(const std::vector<std::pair<std::string, std::string>>& ids) {
  v1::SealedIdentities sealed;
  for (const auto& [type, value] : ids) {
    auto* out = sealed.add_identities();
    out->set_type(type);
    out->set_value(value);
  }
  return sealed.SerializeAsString();
}

// The unsigned command, its identities sealed to `recipient`.
inline v1::DeleteCommand MakeCommand(const CommandSpec& spec, const crypto::X25519PublicKey& recipient) {
  v1::DeleteCommand cmd;
  cmd.set_command_id(spec.command_id);
  cmd.set_request_id(spec.request_id);
  cmd.set_domain(spec.domain);
  cmd.set_sealed_identities(crypto::SealTo(recipient, SerializeIdentities(spec.identities)));
  cmd.set_recipient_key_id(recipient.KeyId());
  cmd.set_domain_policy_hash(spec.domain_policy_hash);
  cmd.set_issued_at_unix_ms(absl::ToUnixMillis(spec.issued_at));
  cmd.set_not_after_unix_ms(absl::ToUnixMillis(spec.issued_at + spec.ttl));
  cmd.set_nonce(std::string(16, '\x42'));
  return cmd;
}

// `body` signed as a message of `payload_type`, as wire bytes.
inline std::string SignedWire(const std::string& body, const crypto::Ed25519PrivateKey& signer,
                              const char* payload_type = proto::kDeleteCommandType) {
  return proto::SignEnvelope(payload_type, body, signer).SerializeAsString();
}

// `cmd` signed by `signer`, as it travels on lethe.commands.<domain>.
inline std::string SignedWire(const v1::DeleteCommand& cmd, const crypto::Ed25519PrivateKey& signer) {
  return SignedWire(cmd.SerializeAsString(), signer);
}

}  // namespace lethe::fakes
