#include "controlplane/consent_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"

namespace lethe::controlplane {

namespace {
std::string SubjectKey(const std::string& type, const std::string& token) {
  return absl::StrCat(type, absl::string_view("\0", 1), token);
}
}  // namespace

std::string ConsentRecord::TopicKey() const {
  return absl::StrCat(identity_type, ":", crypto::Hex(token), ":", purpose);
}

absl::Status ConsentStore::Apply(uint64_t seq, const v1::LedgerEntry& e) {
  if (e.body_case() != v1::LedgerEntry::kConsentChanged) return absl::OkStatus();
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
  std::lock_guard<std::mutex> l(mu_);
  latest_[r.TopicKey()] = changes_.size();
  by_subject_[SubjectKey(r.identity_type, r.token)].push_back(changes_.size());
  changes_.push_back(std::move(r));
  ++version_;
  changed_.notify_all();
  return absl::OkStatus();
}

std::vector<ConsentRecord> ConsentStore::History(const std::string& type,
                                                 const std::string& token) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ConsentRecord> out;
  auto it = by_subject_.find(SubjectKey(type, token));
  if (it == by_subject_.end()) return out;
  for (size_t i : it->second) out.push_back(changes_[i]);
  return out;
}

std::vector<ConsentRecord> ConsentStore::Current(const std::string& type,
                                                 const std::string& token) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ConsentRecord> out;
  auto subject = by_subject_.find(SubjectKey(type, token));
  if (subject == by_subject_.end()) return out;
  for (size_t i : subject->second) {
    const ConsentRecord& r = changes_[i];
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const ConsentRecord& o) { return o.purpose == r.purpose; });
    if (it == out.end()) out.push_back(r);
    else *it = r;
  }
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
  return changes_[it->second];
}

std::vector<ConsentRecord> ConsentStore::ByPurpose(const std::string& purpose) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<size_t> idx;
  for (const auto& [key, i] : latest_)
    if (changes_[i].purpose == purpose) idx.push_back(i);
  std::sort(idx.begin(), idx.end());
  std::vector<ConsentRecord> out;
  for (size_t i : idx) out.push_back(changes_[i]);
  return out;
}

std::vector<ConsentRecord> ConsentStore::CurrentAfter(uint64_t after) const {
  std::lock_guard<std::mutex> l(mu_);
  // changes_ is in ledger order: only the changes past `after` are looked at, each kept if it
  // is still its key's latest.
  auto first = std::upper_bound(changes_.begin(), changes_.end(), after,
                                [](uint64_t a, const ConsentRecord& r) { return a < r.entry; });
  std::vector<ConsentRecord> out;
  for (auto it = first; it != changes_.end(); ++it) {
    const size_t i = static_cast<size_t>(it - changes_.begin());
    if (latest_.at(it->TopicKey()) == i) out.push_back(*it);
  }
  return out;
}

size_t ConsentStore::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return changes_.size();
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
