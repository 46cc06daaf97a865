#include "controlplane/request_store.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "controlplane/identity_vault.h"

namespace lethe::controlplane {
namespace {
absl::Status Contradiction(uint64_t seq, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("ledger entry ", seq, ": ", what));
}
}  // namespace

absl::Status RequestStore::Apply(uint64_t seq, const v1::LedgerEntry& e) {
  std::lock_guard<std::mutex> l(mu_);
  if (absl::Status s = lifecycle_.Check(e); !s.ok()) return Contradiction(seq, s.message());
  lifecycle_.Apply(e);
  // The lifecycle rule holds from here on: what follows only records.
  switch (e.body_case()) {
    case v1::LedgerEntry::kAgentEnrolled: {
      const auto& a = e.agent_enrolled();
      AgentRecord rec;
      rec.domain = a.domain();
      rec.key_id = a.key_id();
      rec.public_key = a.public_key();
      if (auto k = crypto::Ed25519PublicKey::FromRaw(a.public_key()); k.ok()) rec.verify_key = *std::move(k);
      rec.encryption_public_key = a.encryption_public_key();
      rec.encryption_key_id = a.encryption_key_id();
      rec.entry = seq;
      rec.enrolled_unix_ms = e.time_unix_ms();
      rec.enrolled_by = e.actor();
      agents_.push_back(std::move(rec));
      break;
    }
    case v1::LedgerEntry::kAgentKeyRevoked: {
      const auto& r = e.agent_key_revoked();
      for (auto& a : agents_) {
        if (a.domain != r.domain() || a.key_id != r.key_id()) continue;
        a.revoked = true;
        a.revoked_entry = seq;
        a.revoked_unix_ms = e.time_unix_ms();
        a.revoked_by = e.actor();
        a.revocation_reason = r.reason();
      }
      break;
    }
    case v1::LedgerEntry::kRequestSubmitted: {
      const auto& s = e.request_submitted();
      RequestRecord r;
      r.request_id = s.request_id();
      r.submitted = s;
      r.submitted_entry = seq;
      r.due_unix_ms = s.due_unix_ms();
      for (const auto& d : s.target_domains()) {
        DomainRecord dr;
        dr.domain = d;
        r.domains.push_back(std::move(dr));
      }
      for (const auto& n : s.needs_identity()) {
        DomainRecord dr;
        dr.domain = n.domain();
        dr.state = v1::NEEDS_IDENTITY;
        dr.needed_types.assign(n.identity_types().begin(), n.identity_types().end());
        r.domains.push_back(std::move(dr));
      }
      if (!s.consent_change_id().empty()) r.consent_entry = consent_entries_.at(s.consent_change_id());
      order_.push_back(r.request_id);
      in_progress_.emplace(seq, r.request_id);
      for (const auto& t : r.submitted.subject())
        open_by_token_[t.type() + '\0' + t.token()].push_back(r.request_id);
      requests_[r.request_id] = std::move(r);
      break;
    }
    case v1::LedgerEntry::kCommandIssued: {
      const auto& c = e.command_issued();
      RequestRecord& r = requests_.at(c.request_id());
      for (auto& d : r.domains)
        if (d.domain == c.domain()) d.command_id = c.command_id();
      r.command_entries.push_back(seq);
      commands_[c.command_id()] =
          CommandRecord{c.command_id(), c.request_id(),   c.domain(),           c.command_digest(),
                        c.sealed_envelope(), c.not_after_unix_ms(), seq, c.recipient_key_id()};
      break;
    }
    case v1::LedgerEntry::kReceiptRecorded: {
      const auto& rr = e.receipt_recorded();
      v1::Receipt receipt;
      (void)receipt.ParseFromString(rr.receipt().body());  // verified by the lifecycle check
      for (auto& d : requests_.at(rr.request_id()).domains) {
        if (d.domain != rr.domain()) continue;
        d.state = receipt.outcome() == v1::Receipt::COMPLETED ? v1::DONE : v1::DOMAIN_FAILED;
        d.receipt = receipt;
        d.agent_key_id = rr.receipt().key_id();
        d.receipt_entry = seq;
        d.receipt_unix_ms = e.time_unix_ms();
      }
      break;
    }
    case v1::LedgerEntry::kRequestCompleted: {
      const auto& c = e.request_completed();
      auto it = requests_.find(c.request_id());
      it->second.state =
          c.outcome() == v1::RequestCompleted::COMPLETED ? v1::COMPLETED : v1::FAILED;
      it->second.completed_unix_ms = e.time_unix_ms();
      it->second.completed_entry = seq;
      in_progress_.erase(it->second.submitted_entry);
      ++(it->second.state == v1::COMPLETED ? completed_ : failed_);
      // Its key is destroyed: what was sealed under it can never be opened again, so it is
      // not kept in memory (the ledger keeps it, as evidence). The rest is what is shown.
      it->second.submitted.clear_sealed();
      it->second.sealed_additions.clear();
      it->second.sealed_additions.shrink_to_fit();
      for (const auto& d : it->second.domains) {
        if (d.command_id.empty()) continue;
        auto c = commands_.find(d.command_id);
        if (c != commands_.end()) std::string().swap(c->second.sealed_envelope);
      }
      for (const auto& t : it->second.submitted.subject()) {
        auto o = open_by_token_.find(t.type() + '\0' + t.token());
        if (o == open_by_token_.end()) continue;
        std::erase(o->second, c.request_id());
        if (o->second.empty()) open_by_token_.erase(o);
      }
      break;
    }
    case v1::LedgerEntry::kIdentitiesAdded: {
      const auto& a = e.identities_added();
      auto it = requests_.find(a.request_id());
      for (const auto& t : a.subject()) {
        *it->second.submitted.add_subject() = t;
        open_by_token_[t.type() + '\0' + t.token()].push_back(a.request_id());
      }
      for (const auto& d : a.target_domains()) {
        for (auto& dr : it->second.domains) {
          if (dr.domain != d) continue;
          dr.state = v1::PENDING;
          dr.needed_types.clear();
        }
      }
      it->second.sealed_additions.push_back(a.sealed());
      it->second.addition_entries.push_back(seq);
      break;
    }
    case v1::LedgerEntry::kDeadlineExtended: {
      const auto& x = e.deadline_extended();
      auto it = requests_.find(x.request_id());
      it->second.extensions.push_back(ExtensionRecord{x.extension_seconds(), x.new_due_unix_ms(),
                                                      e.time_unix_ms(), seq, x.sealed_reason()});
      it->second.due_unix_ms = x.new_due_unix_ms();
      break;
    }
    case v1::LedgerEntry::kConsentChanged:
      // Remembered only for the erasure it planned (its RequestSubmitted follows).
      if (!e.consent_changed().erasure_request_id().empty())
        consent_entries_[e.consent_changed().change_id()] = seq;
      break;
    case v1::LedgerEntry::kPolicyActivated:
    case v1::LedgerEntry::kLogCreated:
    case v1::LedgerEntry::BODY_NOT_SET:
      break;
  }
  ++version_;
  changed_.notify_all();
  return absl::OkStatus();
}

absl::Status RequestStore::CheckReceipt(const v1::ReceiptRecorded& rr, bool refusal_allowed,
                                        v1::Receipt* verified) const {
  std::lock_guard<std::mutex> l(mu_);
  return lifecycle_.CheckReceipt(rr, refusal_allowed, verified);
}

std::optional<RequestRecord> RequestStore::Get(const std::string& id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  return it->second;
}

std::vector<RequestRecord> RequestStore::List() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<RequestRecord> out;
  out.reserve(order_.size());
  for (const auto& id : order_) out.push_back(requests_.at(id));
  return out;
}

RequestStore::Tally RequestStore::Count(absl::Time now) const {
  std::lock_guard<std::mutex> l(mu_);
  Tally t;
  t.in_progress = in_progress_.size();
  t.completed = completed_;
  t.failed = failed_;
  for (const auto& [entry, id] : in_progress_) {
    const RequestRecord& r = requests_.at(id);
    if (r.Overdue(now)) ++t.overdue;
    for (const auto& d : r.domains) t.domains_needing_identity += d.state == v1::NEEDS_IDENTITY ? 1 : 0;
  }
  return t;
}

std::vector<RequestRecord> RequestStore::ListPage(uint64_t after, size_t limit,
                                                  const std::function<bool(const RequestRecord&)>& keep,
                                                  bool* more) const {
  std::lock_guard<std::mutex> l(mu_);
  // order_ is in submission order, so submitted_entry rises along it.
  auto it = std::upper_bound(order_.begin(), order_.end(), after,
                             [this](uint64_t a, const std::string& id) {
                               return a < requests_.at(id).submitted_entry;
                             });
  std::vector<RequestRecord> out;
  *more = false;
  for (; it != order_.end(); ++it) {
    const RequestRecord& r = requests_.at(*it);
    if (keep && !keep(r)) continue;
    if (out.size() == limit) {
      *more = true;
      break;
    }
    out.push_back(r);
  }
  return out;
}

std::optional<CommandRecord> RequestStore::Command(const std::string& id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = commands_.find(id);
  if (it == commands_.end()) return std::nullopt;
  return it->second;
}

std::vector<AgentRecord> RequestStore::Agents() const {
  std::lock_guard<std::mutex> l(mu_);
  return agents_;
}

std::optional<AgentRecord> RequestStore::Agent(const std::string& domain,
                                               const std::string& key_id) const {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& a : agents_)
    if (a.domain == domain && a.key_id == key_id) return a;
  return std::nullopt;
}

std::optional<AgentRecord> RequestStore::CurrentAgent(const std::string& domain) const {
  std::lock_guard<std::mutex> l(mu_);
  std::optional<AgentRecord> out;
  for (const auto& a : agents_)
    if (a.domain == domain && !a.revoked && !a.encryption_public_key.empty()) out = a;
  return out;
}

std::optional<crypto::Ed25519PublicKey> RequestStore::AgentKey(const std::string& domain,
                                                               const std::string& key_id) const {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& a : agents_) {
    if (a.domain == domain && a.key_id == key_id && !a.revoked && a.verify_key) return a.verify_key;
  }
  return std::nullopt;
}

std::vector<PendingCommand> RequestStore::Pending(absl::Time now,
                                                  absl::Duration expiry_margin) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<PendingCommand> out;
  for (const auto& [entry, id] : in_progress_) {
    const RequestRecord& r = requests_.at(id);
    for (const auto& d : r.domains) {
      if (d.state != v1::PENDING || d.command_id.empty()) continue;
      const CommandRecord& c = commands_.at(d.command_id);
      const bool expiring = absl::FromUnixMillis(c.not_after_unix_ms) - expiry_margin <= now;
      out.push_back(PendingCommand{c, expiring, r.due_unix_ms});
    }
  }
  return out;
}

std::vector<uint64_t> RequestStore::EvidenceEntries(const std::string& request_id) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint64_t> out;
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return out;
  const RequestRecord& r = it->second;
  out.push_back(r.submitted_entry);
  out.insert(out.end(), r.command_entries.begin(), r.command_entries.end());
  for (const auto& d : r.domains) {
    if (!d.receipt) continue;
    out.push_back(d.receipt_entry);
    for (const auto& a : agents_)
      if (a.domain == d.domain && a.key_id == d.agent_key_id) out.push_back(a.entry);
  }
  for (const auto& x : r.extensions) out.push_back(x.entry);
  for (uint64_t a : r.addition_entries) out.push_back(a);
  if (r.consent_entry != 0) out.push_back(r.consent_entry);
  if (r.state != v1::IN_PROGRESS) out.push_back(r.completed_entry);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> RequestStore::AnsweredButOpen() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (const auto& [entry, id] : in_progress_) {
    const RequestRecord& r = requests_.at(id);
    bool all = true;
    for (const auto& d : r.domains) all = all && (d.state == v1::DONE || d.state == v1::DOMAIN_FAILED);
    if (all) out.push_back(id);
  }
  return out;
}

void RequestStore::NotePublished(const std::string& command_id) {
  std::lock_guard<std::mutex> l(mu_);
  ++attempts_[command_id];
  ++version_;
  changed_.notify_all();
}

void RequestStore::NoteRejection(const std::string& command_id, std::string why) {
  std::lock_guard<std::mutex> l(mu_);
  rejections_[command_id] = std::move(why);
  ++version_;
  changed_.notify_all();
}

std::string RequestStore::LastRejection(const std::string& command_id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = rejections_.find(command_id);
  return it == rejections_.end() ? std::string() : it->second;
}

std::vector<std::string> RequestStore::OpenWithToken(const std::string& type,
                                                     const std::string& token) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = open_by_token_.find(type + '\0' + token);
  if (it == open_by_token_.end()) return {};
  return it->second;
}

int RequestStore::Attempts(const std::string& command_id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = attempts_.find(command_id);
  return it == attempts_.end() ? 0 : it->second;
}

uint64_t RequestStore::version() const {
  std::lock_guard<std::mutex> l(mu_);
  return version_;
}

uint64_t RequestStore::WaitForChange(uint64_t seen, absl::Duration timeout) const {
  std::unique_lock<std::mutex> l(mu_);
  changed_.wait_for(l, absl::ToChronoMilliseconds(timeout), [&] { return version_ != seen; });
  return version_;
}

v1::RequestView ToView(const RequestRecord& r, const RequestStore& store, absl::Time now,
                       const IdentityVault* vault) {
  v1::RequestView v;
  v.set_request_id(r.request_id);
  v.set_kind("erasure");
  v.set_state(r.state);
  v.set_received_unix_ms(r.submitted.received_unix_ms());
  v.set_due_unix_ms(r.due_unix_ms);
  v.set_overdue(r.Overdue(now));
  v.set_scope_purpose(r.submitted.scope_purpose());
  v.set_consent_change_id(r.submitted.consent_change_id());
  v.set_consent_entry(r.consent_entry);
  std::optional<SecretBytes> key;
  if (vault != nullptr && !r.extensions.empty()) {
    auto k = vault->RequestKey(r.request_id);
    if (k.ok()) key = std::move(*k);
  }
  for (size_t i = 0; i < r.extensions.size(); ++i) {
    const ExtensionRecord& x = r.extensions[i];
    auto* xv = v.add_extensions();
    xv->set_extension_seconds(x.extension_seconds);
    xv->set_new_due_unix_ms(x.new_due_unix_ms);
    xv->set_recorded_unix_ms(x.recorded_unix_ms);
    xv->set_entry(x.entry);
    bool shown = false;
    if (key) {
      auto plain = crypto::OpenAesGcm(*key, x.sealed_reason, ExtensionAad(r.request_id, i));
      if (plain.ok()) {
        xv->set_reason(std::string(RevealSecret(*plain)));
        shown = true;
      }
    }
    xv->set_reason_shredded(!shown);
  }
  v.set_completed_unix_ms(r.completed_unix_ms);
  v.set_completed_entry(r.completed_entry);
  for (const auto& t : r.submitted.subject()) v.add_identity_types(t.type());
  v.set_submitted_entry(r.submitted_entry);
  v.set_policy_hash(crypto::Hex(r.submitted.policy_hash()));
  for (const auto& d : r.domains) {
    auto* dp = v.add_domains();
    dp->set_domain(d.domain);
    dp->set_state(d.state);
    dp->set_command_id(d.command_id);
    dp->set_attempts(store.Attempts(d.command_id));
    for (const auto& t : d.needed_types) {
      // Still lacking: not among the request's identities (some may have been added since).
      bool have = false;
      for (const auto& s : r.submitted.subject()) have = have || s.type() == t;
      if (!have) dp->add_needed_identity_types(t);
    }
    if (d.state == v1::PENDING) dp->set_last_rejection(store.LastRejection(d.command_id));
    if (d.receipt) {
      for (const auto& t : d.receipt->tables()) {
        auto* tp = dp->add_tables();
        tp->set_table(t.table());
        tp->set_action(t.action());
        tp->set_rows_affected(t.rows_affected());
        tp->set_rows_remaining(t.rows_remaining());
        tp->set_rows_near_match(t.rows_near_match());
        tp->set_rows_withheld(t.rows_withheld());
        tp->set_basis(t.basis());
        tp->set_retention_period_seconds(t.retention_period_seconds());
        *tp->mutable_columns() = t.columns();
      }
      *dp->mutable_tombstones() = d.receipt->tombstones();
      dp->set_verified_zero_remaining(d.receipt->verified_zero_remaining());
      dp->set_error(d.receipt->error());
      dp->set_agent_key_id(d.agent_key_id);
      dp->set_receipt_entry(d.receipt_entry);
      dp->set_receipt_unix_ms(d.receipt_unix_ms);
    }
  }
  return v;
}

}  // namespace lethe::controlplane
