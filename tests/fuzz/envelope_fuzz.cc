// Fuzz target: verification of signed commands and receipts.
//
// The first byte chooses what the rest is:
//   even: the wire bytes of a SignedEnvelope holding a DeleteCommand, as an agent reads them
//         from Kafka: VerifyEnvelope (proto/envelope.h) and the plain reading OpenEnvelope
//         (tests/support/envelopes.h) under the fixed
//         control-plane key, then the agent's CommandVerifier (agents/command_verifier.h) for domain
//         "growth" at a fixed time;
//   odd:  the bytes of a lethe.v1.ReceiptRecorded ledger body: audit::CheckRecordedReceipt
//         (audit/request_lifecycle.h) under the fixed agent key, and OpenEnvelope of its receipt.
// Signatures made by the fuzzer never verify, so each input is also tried once more with its
// envelope signed again by the fixed key (same type and body bytes): that reaches the body
// checks behind the signature.
//
// Checks: a verified command is for "growth", carries the digest of its body, and is the
// command OpenEnvelope parses; an envelope signed with the key verifies; a receipt that
// passes names the recorded command, request and domain and has an outcome.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agents/command_verifier.h"
#include "audit/auditor.h"
#include "base/clock.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "proto/envelope.h"
#include "tests/fuzz/fuzz_ledger.h"
#include "tests/support/envelopes.h"

namespace {

using lethe::fuzz::Violated;
namespace v1 = lethe::v1;

using lethe::testing::OpenEnvelope;

const lethe::ManualClock& FixedClock() {
  static const lethe::ManualClock& clock =
      *new lethe::ManualClock(absl::FromUnixMillis(lethe::fuzz::kNowUnixMs));
  return clock;
}

const lethe::agents::CommandVerifier& Verifier() {
  static const lethe::agents::CommandVerifier& verifier = *new lethe::agents::CommandVerifier(
      lethe::fuzz::ControlPlaneKey().public_key(), lethe::fuzz::kDomain,
      lethe::fuzz::DomainPolicyHash(), lethe::fuzz::AgentEncryptionKey(), FixedClock());
  return verifier;
}

void CheckCommandWire(std::string_view wire) {
  const auto& key = lethe::fuzz::ControlPlaneKey().public_key();
  v1::DeleteCommand opened;
  std::string body;
  const absl::Status open = OpenEnvelope(wire, lethe::proto::kDeleteCommandType, key, &opened, &body);
  const lethe::agents::VerifyResult result = Verifier().Verify(wire);
  if (result.command.ok()) {
    if (!open.ok()) Violated("the verifier accepts a command OpenEnvelope refuses:", open.ToString());
    const v1::DeleteCommand& c = result.command->command;
    if (c.domain() != lethe::fuzz::kDomain) Violated("accepted a command for another domain");
    if (result.command->digest != lethe::crypto::Sha256(body)) Violated("command digest is not its body's");
    if (c.SerializeAsString() != opened.SerializeAsString()) Violated("verifier and OpenEnvelope parse differently");
    if (c.domain_policy_hash() != lethe::fuzz::DomainPolicyHash()) Violated("accepted a command for another policy");
    if (result.command->identities.identities().empty()) Violated("accepted a command with no sealed identity");
    if (c.recipient_key_id() != lethe::fuzz::AgentEncryptionKey().public_key().KeyId())
      Violated("accepted a command sealed to another key");
  } else if (result.authentic.has_value() &&
             result.rejection != lethe::agents::Rejection::kPolicyDrift &&
             result.rejection != lethe::agents::Rejection::kNotForThisKey) {
    Violated("an authentic command rejected for something other than policy drift or its sealing");
  }
  (void)lethe::agents::RejectionName(result.rejection);
}

void CheckCommand(std::string_view wire) {
  CheckCommandWire(wire);
  v1::SignedEnvelope env;
  if (!env.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) return;
  const auto& key = lethe::fuzz::ControlPlaneKey();
  (void)lethe::proto::VerifyEnvelope(env, lethe::proto::kDeleteCommandType, key.public_key());
  const v1::SignedEnvelope resigned = lethe::proto::SignEnvelope(env.payload_type(), env.body(), key);
  auto body = lethe::proto::VerifyEnvelope(resigned, env.payload_type(), key.public_key());
  if (!body.ok() || *body != env.body()) Violated("an envelope signed with the key does not verify");
  CheckCommandWire(resigned.SerializeAsString());
}

void CheckReceiptRecorded(const v1::ReceiptRecorded& rr) {
  const auto& agent = lethe::fuzz::AgentKey().public_key();
  auto receipt = lethe::audit::CheckRecordedReceipt(rr, agent, lethe::fuzz::CommandDigest());
  if (!receipt.ok()) return;
  if (receipt->command_id() != rr.command_id() || receipt->request_id() != rr.request_id() ||
      receipt->domain() != rr.domain())
    Violated("a receipt that passed names another command, request or domain");
  if (receipt->command_digest() != lethe::fuzz::CommandDigest()) Violated("a receipt for other command bytes passed");
  if (receipt->outcome() == v1::Receipt::COMPLETED && !receipt->verified_zero_remaining())
    Violated("a COMPLETED receipt without the re-check passed");
  if (receipt->outcome() != v1::Receipt::COMPLETED && receipt->outcome() != v1::Receipt::FAILED)
    Violated("a receipt without an outcome passed");
  v1::Receipt opened;
  if (!OpenEnvelope(rr.receipt().SerializeAsString(), lethe::proto::kReceiptType, agent, &opened).ok())
    Violated("OpenEnvelope refuses a receipt CheckRecordedReceipt accepted");
}

void CheckReceipt(std::string_view bytes) {
  v1::ReceiptRecorded rr;
  if (!rr.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  CheckReceiptRecorded(rr);
  v1::Receipt opened;
  (void)OpenEnvelope(rr.receipt().SerializeAsString(), lethe::proto::kReceiptType,
                            lethe::fuzz::AgentKey().public_key(), &opened);
  *rr.mutable_receipt() = lethe::proto::SignEnvelope(rr.receipt().payload_type(), rr.receipt().body(),
                                              lethe::fuzz::AgentKey());
  CheckReceiptRecorded(rr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > lethe::fuzz::kMaxInput || size == 0) return -1;
  lethe::fuzz::QuietProtobuf();
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    CheckCommand(rest);
  } else {
    CheckReceipt(rest);
  }
  return 0;
}
