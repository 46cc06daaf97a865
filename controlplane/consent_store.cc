#include "controlplane/consent_store.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "crypto/crypto.h"

namespace lethe::controlplane {

namespace {
std::string SubjectKey(const std::string& type, const std::string& token) {
  return absl::StrCat(type, absl::string_view("\0", 1), token);
}

absl::StatusOr<ConsentRecord> RecordOf(uint64_t seq, const v1::LedgerEntry& e) {
  if (e.body_case() != v1::LedgerEntry::kConsentChanged)
    return absl::DataLossError(absl::StrCat("ledger entry ", seq, ": not the ConsentChanged recorded there"));
  const auto& c = e.consent_changed();
  if (c.subject().token().size() != 32 ||
      (c.status() != v1::GRANTED && c.status() != v1::WITHDRAWN) || c.purpose().empty())
    return absl::DataLossError(absl::StrCat("ledger entry ", seq, ": malformed ConsentChanged"));
  ConsentRecord r;
  r.identity_type = c.subject().type();
  r.token = c.subject().token();
  r.purpose = c.purpose();
  r.status = c.status();
  r.changed_unix_ms = e.time_unix_ms();
  r.source = c.source();
  r.change_id = c.change_id();
  r.erasure_request_id = c.erasure_request_id();
  r.entry = seq;
  return r;
}

}  // namespace

std::string ConsentRecord::TopicKey() const {
  return absl::StrCat(identity_type, ":", crypto::Hex(token), ":", purpose);
}

ConsentStore::ConsentStore() : scratch_dir_(ScratchFile::DefaultDir()) {}

void ConsentStore::SetScratchDir(std::string dir) {
  std::lock_guard<std::mutex> l(mu_);
  scratch_dir_ = std::move(dir);
}

absl::Status ConsentStore::Apply(uint64_t seq, const v1::LedgerEntry& e) {
  if (e.body_case() != v1::LedgerEntry::kConsentChanged) return absl::OkStatus();
  absl::StatusOr<ConsentRecord> r = RecordOf(seq, e);
  if (!r.ok()) return r.status();
  std::lock_guard<std::mutex> l(mu_);
  if (!changes_file_) {
    LETHE_ASSIGN_OR_RETURN(changes_file_,
                           ScratchFile::Create(scratch_dir_, "lethed's consent histories in " + scratch_dir_));
  }
  const std::string key = r->TopicKey();
  uint64_t& latest = by_subject_[SubjectKey(r->identity_type, r->token)];
  char node[kNodeBytes];
  std::memcpy(node, &seq, 8);
  std::memcpy(node + 8, &latest, 8);
  latest = changes_file_->Append(std::string_view(node, kNodeBytes)) / kNodeBytes + 1;
  auto it = latest_.find(key);
  if (it != latest_.end()) {
    ConsentRecord& current = it->second.record;
    latest_by_entry_.erase(current.entry);
    // The state it replaces: kept whole until durable, then read back when asked for.
    if (current.entry >= durable_end_) superseded_.emplace(current.entry, std::move(current));
    current = *std::move(r);
  } else {
    latest_.emplace(key, CurrentState{*std::move(r), seq});
  }
  latest_by_entry_.emplace(seq, key);
  ++changes_;
  ++version_;
  changed_.notify_all();
  return absl::OkStatus();
}

void ConsentStore::SetEntryReader(EntryReader reader) {
  std::lock_guard<std::mutex> l(mu_);
  reader_ = std::move(reader);
}

void ConsentStore::MarkDurable(uint64_t end) {
  std::lock_guard<std::mutex> l(mu_);
  durable_end_ = std::max(durable_end_, end);
  superseded_.erase(superseded_.begin(), superseded_.lower_bound(durable_end_));
}

absl::StatusOr<std::vector<ConsentRecord>> ConsentStore::History(const std::string& type,
                                                                 const std::string& token) const {
  std::unique_lock<std::mutex> l(mu_);
  auto it = by_subject_.find(SubjectKey(type, token));
  if (it == by_subject_.end()) return std::vector<ConsentRecord>();
  // The subject identity's changes, newest first from its latest node, then in log order.
  std::vector<uint64_t> entries;
  for (uint64_t node = it->second; node != 0;) {
    char bytes[kNodeBytes];
    LETHE_RETURN_IF_ERROR(changes_file_->ReadAt((node - 1) * kNodeBytes, kNodeBytes, bytes));
    uint64_t seq, before;
    std::memcpy(&seq, bytes, 8);
    std::memcpy(&before, bytes + 8, 8);
    if (before >= node || (!entries.empty() && seq >= entries.back()))
      return absl::DataLossError(absl::StrCat(changes_file_->what(), ": node ", node - 1, " is not one lethed wrote"));
    entries.push_back(seq);
    node = before;
  }
  std::reverse(entries.begin(), entries.end());
  // Each change: its key's current state, superseded but not yet durable, or to be read back.
  std::vector<std::optional<ConsentRecord>> held;
  for (uint64_t seq : entries) {
    if (auto k = latest_by_entry_.find(seq); k != latest_by_entry_.end()) {
      held.emplace_back(latest_.at(k->second).record);
    } else if (auto s = superseded_.find(seq); s != superseded_.end()) {
      held.emplace_back(s->second);
    } else {
      held.emplace_back(std::nullopt);
    }
  }
  EntryReader reader = reader_;
  l.unlock();  // read the ledger without holding the store
  std::vector<ConsentRecord> out;
  out.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (held[i]) {
      out.push_back(*std::move(held[i]));
      continue;
    }
    if (!reader) return absl::InternalError("consent history: no ledger to read it back from");
    absl::StatusOr<std::string> bytes = reader(entries[i]);
    if (!bytes.ok()) return bytes.status();
    v1::LedgerEntry e;
    if (!e.ParseFromString(*bytes))
      return absl::DataLossError(absl::StrCat("ledger entry ", entries[i], ": does not parse as it did when recorded"));
    absl::StatusOr<ConsentRecord> r = RecordOf(entries[i], e);
    if (!r.ok()) return r.status();
    if (r->identity_type != type || r->token != token)
      return absl::DataLossError(absl::StrCat("ledger entry ", entries[i], ": not the change recorded there"));
    out.push_back(*std::move(r));
  }
  return out;
}

std::vector<ConsentRecord> ConsentStore::Current(const std::string& type,
                                                 const std::string& token) const {
  ConsentRecord probe;
  probe.identity_type = type;
  probe.token = token;
  const std::string prefix = probe.TopicKey();  // "<type>:<hex token>:", the purpose empty
  std::lock_guard<std::mutex> l(mu_);
  // The subject's keys are adjacent in latest_; shown in order of each purpose's first change.
  std::vector<std::pair<uint64_t, const ConsentRecord*>> found;
  for (auto it = latest_.lower_bound(prefix); it != latest_.end() && it->first.starts_with(prefix); ++it) {
    const CurrentState& latest = it->second;
    if (latest.record.identity_type == type && latest.record.token == token)
      found.emplace_back(latest.first_entry, &latest.record);
  }
  std::sort(found.begin(), found.end());
  std::vector<ConsentRecord> out;
  for (const auto& [first, r] : found) out.push_back(*r);
  return out;
}

std::optional<ConsentRecord> ConsentStore::Latest(const std::string& type,
                                                  const std::string& token,
                                                  const std::string& purpose) const {
  ConsentRecord probe;
  probe.identity_type = type;
  probe.token = token;
  probe.purpose = purpose;
  std::lock_guard<std::mutex> l(mu_);
  auto it = latest_.find(probe.TopicKey());
  if (it == latest_.end()) return std::nullopt;
  return it->second.record;
}

std::vector<ConsentRecord> ConsentStore::ByPurpose(const std::string& purpose) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ConsentRecord> out;
  for (const auto& [entry, key] : latest_by_entry_) {
    const ConsentRecord& r = latest_.at(key).record;
    if (r.purpose == purpose) out.push_back(r);
  }
  return out;
}

std::vector<ConsentRecord> ConsentStore::CurrentAfter(uint64_t after) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ConsentRecord> out;
  for (auto it = latest_by_entry_.upper_bound(after); it != latest_by_entry_.end(); ++it)
    out.push_back(latest_.at(it->second).record);
  return out;
}

size_t ConsentStore::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return changes_;
}

size_t ConsentStore::held() const {
  std::lock_guard<std::mutex> l(mu_);
  return latest_.size() + superseded_.size();
}

uint64_t ConsentStore::version() const {
  std::lock_guard<std::mutex> l(mu_);
  return version_;
}

uint64_t ConsentStore::WaitForChange(uint64_t seen, absl::Duration timeout) const {
  std::unique_lock<std::mutex> l(mu_);
  changed_.wait_for(l, absl::ToChronoMilliseconds(timeout), [&] { return version_ != seen; });
  return version_;
}

}  // namespace lethe::controlplane
