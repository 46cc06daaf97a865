#include "controlplane/request_store.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "audit/physical.h"
#include "base/status.h"
#include "base/varint.h"
#include "controlplane/identity_vault.h"

namespace lethe::controlplane {
namespace {
absl::Status Contradiction(uint64_t seq, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("ledger entry ", seq, ": ", what));
}
// What an entry of a request changes in its record: the same whether the entry is applied
// as it is sequenced or read back to rebuild an ended request (RequestStore::Load). The
// lifecycle rule has accepted the entry.
void ApplyToRecord(RequestRecord& r, uint64_t seq, const v1::LedgerEntry& e) {
  switch (e.body_case()) {
    case v1::LedgerEntry::kRequestSubmitted: {
      const auto& s = e.request_submitted();
      r.request_id = s.request_id();
      r.submitted = s;
      r.submitted_entry = seq;
      r.due_unix_ms = s.due_unix_ms();
      // At once: a DomainRecord is 616 bytes, and growing the vector one by one was 5% of
      // a restart's replay.
      r.domains.reserve(r.domains.size() + s.target_domains_size() + s.needs_identity_size());
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
      break;
    }
    case v1::LedgerEntry::kCommandIssued: {
      const auto& c = e.command_issued();
      for (auto& d : r.domains)
        if (d.domain == c.domain()) d.command_id = c.command_id();
      r.command_entries.push_back(seq);
      r.command_ids.push_back(c.command_id());
      break;
    }
    case v1::LedgerEntry::kReceiptRecorded: {
      const auto& rr = e.receipt_recorded();
      v1::Receipt receipt;
      (void)receipt.ParseFromString(rr.receipt().body());  // verified by the lifecycle check
      for (auto& d : r.domains) {
        if (d.domain != rr.domain()) continue;
        if (receipt.outcome() == v1::Receipt::PHYSICALLY_PURGED) {  // not an answer (rule V1)
          d.physical = receipt;
          d.physical_key_id = rr.receipt().key_id();
          d.physical_entry = seq;
          continue;
        }
        d.state = receipt.outcome() == v1::Receipt::COMPLETED ? v1::DONE : v1::DOMAIN_FAILED;
        d.receipt = receipt;
        d.agent_key_id = rr.receipt().key_id();
        d.receipt_entry = seq;
        d.receipt_unix_ms = e.time_unix_ms();
      }
      break;
    }
    case v1::LedgerEntry::kRequestCompleted:
      r.state = e.request_completed().outcome() == v1::RequestCompleted::COMPLETED        ? v1::COMPLETED
                : e.request_completed().outcome() == v1::RequestCompleted::DONE_WITH_GAPS ? v1::DONE_WITH_GAPS
                                                                                          : v1::FAILED;
      r.completed_unix_ms = e.time_unix_ms();
      r.completed_entry = seq;
      // Its key is destroyed: what was sealed under it can never be opened again, so it is
      // not kept in memory (the ledger keeps it, as evidence). The rest is what is shown.
      r.submitted.clear_sealed();
      r.sealed_additions.clear();
      r.sealed_additions.shrink_to_fit();
      break;
    case v1::LedgerEntry::kIdentitiesAdded: {
      const auto& a = e.identities_added();
      for (const auto& t : a.subject()) *r.submitted.add_subject() = t;
      for (const auto& d : a.target_domains()) {
        for (auto& dr : r.domains) {
          if (dr.domain != d) continue;
          dr.state = v1::PENDING;
          dr.needed_types.clear();
        }
      }
      r.sealed_additions.push_back(a.sealed());
      r.addition_entries.push_back(seq);
      break;
    }
    case v1::LedgerEntry::kDeadlineExtended: {
      const auto& x = e.deadline_extended();
      r.extensions.push_back(ExtensionRecord{x.extension_seconds(), x.new_due_unix_ms(), e.time_unix_ms(), seq,
                                             x.sealed_reason()});
      r.due_unix_ms = x.new_due_unix_ms();
      break;
    }
    case v1::LedgerEntry::kConsentChanged:
      r.consent_entry = seq;  // read back: the withdrawal that planned the request
      break;
    case v1::LedgerEntry::kPackageReleased:
      r.released_entry = seq;
      r.released_unix_ms = e.time_unix_ms();
      r.released_reason = e.package_released().reason();
      break;
    default:
      break;
  }
}

}  // namespace

class RequestStore::ScratchEndedIds final : public audit::EndedIds {
 public:
  ScratchEndedIds(DigestTable& requests, DigestTable& commands) : requests_(requests), commands_(commands) {}
  absl::StatusOr<bool> RequestEnded(absl::uint128 d) const override { return Has(requests_, d); }
  absl::StatusOr<bool> CommandEnded(absl::uint128 d) const override { return Has(commands_, d); }
  // A request ends here before it is compacted (RequestStore::Compact gives its place then).
  void EndRequest(absl::uint128 d) override { requests_.Put(d, kEndedWhole); }
  void EndCommand(absl::uint128 d) override { commands_.Put(d, kNoVacuumWait); }

 private:
  static absl::StatusOr<bool> Has(const DigestTable& t, absl::uint128 d) {
    LETHE_ASSIGN_OR_RETURN(const std::optional<uint64_t> v, t.Get(d));
    return v.has_value();
  }
  DigestTable& requests_;
  DigestTable& commands_;
};

// The lifecycle's VacuumWaits, in the table of ended command ids (ScratchEndedIds asks only
// whether a key is there): a command's value is the ledger index of its COMPLETED receipt's
// entry + 1 while it awaits its PHYSICALLY_PURGED receipt, kNoVacuumWait otherwise. Entries are
// read back through the store's EntryReader (each checked against its Merkle leaf).
class RequestStore::ScratchVacuumWaits final : public audit::VacuumWaits {
 public:
  ScratchVacuumWaits(DigestTable& table, const EntryReader& reader) : table_(table), reader_(reader) {}
  absl::StatusOr<std::optional<uint64_t>> Find(absl::uint128 command) const override {
    LETHE_ASSIGN_OR_RETURN(const std::optional<uint64_t> v, table_.Get(command));
    if (!v || *v == kNoVacuumWait) return std::nullopt;
    return *v - 1;
  }
  void Await(absl::uint128 command, uint64_t seq) override { table_.Put(command, seq + 1); }
  void Done(absl::uint128 command) override { table_.Put(command, kNoVacuumWait); }
  absl::StatusOr<v1::LedgerEntry> Read(uint64_t seq) const override {
    if (!reader_) return absl::FailedPreconditionError("lethed's request store has no ledger to read entries from");
    absl::StatusOr<std::string> bytes = reader_(seq);
    // Not durable yet (the request ended moments ago): the receipt is taken again later.
    if (bytes.status().code() == absl::StatusCode::kOutOfRange)
      return absl::UnavailableError(absl::StrCat("ledger entry ", seq, " is not durable yet"));
    if (!bytes.ok()) return bytes.status();
    v1::LedgerEntry e;
    if (!e.ParseFromString(*bytes)) return absl::DataLossError(absl::StrCat("ledger entry ", seq, " does not parse"));
    return e;
  }

 private:
  DigestTable& table_;
  const EntryReader& reader_;
};

RequestStore::RequestStore() : scratch_dir_(ScratchFile::DefaultDir()) {}

RequestStore::~RequestStore() = default;

void RequestStore::SetScratchDir(std::string dir) {
  std::lock_guard<std::mutex> l(mu_);
  scratch_dir_ = std::move(dir);
}

absl::Status RequestStore::OpenScratch() {
  if (ended_ids_) return absl::OkStatus();
  LETHE_ASSIGN_OR_RETURN(submissions_, ScratchFile::Create(scratch_dir_, "lethed's request list in " + scratch_dir_));
  LETHE_ASSIGN_OR_RETURN(stories_, ScratchFile::Create(scratch_dir_, "lethed's ended requests in " + scratch_dir_));
  LETHE_ASSIGN_OR_RETURN(ended_requests_,
                         DigestTable::Create(scratch_dir_, "lethed's ended request ids in " + scratch_dir_));
  LETHE_ASSIGN_OR_RETURN(ended_commands_,
                         DigestTable::Create(scratch_dir_, "lethed's ended command ids in " + scratch_dir_));
  ended_ids_ = std::make_unique<ScratchEndedIds>(*ended_requests_, *ended_commands_);
  lifecycle_.UseEndedIds(ended_ids_.get());
  vacuum_waits_ = std::make_unique<ScratchVacuumWaits>(*ended_commands_, reader_);
  // Used once entries can be read back (SetEntryReader): lethed replays its ledger first.
  if (reader_) lifecycle_.UseVacuumWaits(vacuum_waits_.get());
  return absl::OkStatus();
}

std::string RequestStore::EncodeSubmission(const Submission& s) {
  std::string rec(kSubmissionBytes, '\0');
  std::memcpy(rec.data(), &s.entry, 8);
  std::memcpy(rec.data() + 8, &s.story, 8);
  std::memcpy(rec.data() + 16, &s.length, 4);
  return rec;
}

RequestStore::Submission RequestStore::ParseSubmission(const char* rec) {
  Submission s;
  std::memcpy(&s.entry, rec, 8);
  std::memcpy(&s.story, rec + 8, 8);
  std::memcpy(&s.length, rec + 16, 4);
  return s;
}

absl::StatusOr<RequestStore::Submission> RequestStore::ReadSubmission(uint64_t ordinal) const {
  char rec[kSubmissionBytes];
  LETHE_RETURN_IF_ERROR(submissions_->ReadAt(ordinal * kSubmissionBytes, kSubmissionBytes, rec));
  return ParseSubmission(rec);
}

absl::StatusOr<std::string> RequestStore::ReadStory(const Submission& s) const {
  std::string packed(s.length, '\0');
  LETHE_RETURN_IF_ERROR(stories_->ReadAt(s.story - 1, s.length, packed.data()));
  return packed;
}

absl::Status RequestStore::Apply(uint64_t seq, const v1::LedgerEntry& e) {
  std::lock_guard<std::mutex> l(mu_);
  LETHE_RETURN_IF_ERROR(OpenScratch());
  if (absl::Status s = lifecycle_.Check(e); !s.ok()) {
    // A scratch file that cannot be read says nothing of the entry: its error, as it is.
    if (s.code() == absl::StatusCode::kUnavailable) return s;
    return Contradiction(seq, s.message());
  }
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
      ApplyToRecord(r, seq, e);
      r.ordinal = submissions_->Append(EncodeSubmission(Submission{seq})) / kSubmissionBytes;
      // The withdrawal that planned it (the rule has checked it did): needed no longer.
      if (auto c = consent_entries_.find(s.consent_change_id()); c != consent_entries_.end()) {
        r.consent_entry = c->second;
        consent_entries_.erase(c);
      }
      whole_.emplace(seq, r.request_id);
      in_progress_.emplace(seq, r.request_id);
      for (const auto& t : r.submitted.subject())
        open_by_token_[t.type() + '\0' + t.token()].push_back(r.request_id);
      requests_[r.request_id] = std::move(r);
      break;
    }
    case v1::LedgerEntry::kCommandIssued: {
      const auto& c = e.command_issued();
      RequestRecord& r = requests_.at(c.request_id());
      ApplyToRecord(r, seq, e);
      commands_[c.command_id()] =
          CommandRecord{c.command_id(),      c.request_id(),         c.domain(), c.command_digest(),
                        c.sealed_envelope(), c.not_after_unix_ms(), seq,        c.recipient_key_id(),
                        r.access()};
      break;
    }
    case v1::LedgerEntry::kReceiptRecorded: {
      const std::string& id = e.receipt_recorded().request_id();
      if (auto it = requests_.find(id); it != requests_.end()) {
        ApplyToRecord(it->second, seq, e);
      } else {
        // A PHYSICALLY_PURGED receipt of a request already compacted (the lifecycle admits no
        // other receipt for an ended request): its story grows by the entry.
        LETHE_RETURN_IF_ERROR(AddToStory(id, seq));
      }
      break;
    }
    case v1::LedgerEntry::kRequestCompleted: {
      const auto& c = e.request_completed();
      RequestRecord& r = requests_.at(c.request_id());
      ApplyToRecord(r, seq, e);
      in_progress_.erase(r.submitted_entry);
      ++(r.state == v1::COMPLETED ? completed_ : r.state == v1::DONE_WITH_GAPS ? done_with_gaps_ : failed_);
      // Runtime facts about its commands end with it.
      for (const auto& id : r.command_ids) {
        commands_.erase(id);
        attempts_.erase(id);
        rejections_.erase(id);
      }
      r.command_ids.clear();
      r.command_ids.shrink_to_fit();
      for (const auto& t : r.submitted.subject()) {
        auto o = open_by_token_.find(t.type() + '\0' + t.token());
        if (o == open_by_token_.end()) continue;
        std::erase(o->second, c.request_id());
        if (o->second.empty()) open_by_token_.erase(o);
      }
      // An access request's story goes on until its package is released.
      if (r.access())
        unreleased_[c.request_id()] = r.due_unix_ms;
      else
        ending_.emplace_back(seq, c.request_id());
      break;
    }
    case v1::LedgerEntry::kPackageReleased: {
      const std::string& id = e.package_released().request_id();
      ApplyToRecord(requests_.at(id), seq, e);
      unreleased_.erase(id);
      ending_.emplace_back(seq, id);
      break;
    }
    case v1::LedgerEntry::kIdentitiesAdded: {
      const auto& a = e.identities_added();
      ApplyToRecord(requests_.at(a.request_id()), seq, e);
      for (const auto& t : a.subject()) open_by_token_[t.type() + '\0' + t.token()].push_back(a.request_id());
      break;
    }
    case v1::LedgerEntry::kDeadlineExtended:
      ApplyToRecord(requests_.at(e.deadline_extended().request_id()), seq, e);
      break;
    case v1::LedgerEntry::kConsentChanged:
      // Remembered only for the erasure it planned (its RequestSubmitted follows, and wakes
      // the waiters): a change that plans nothing changes no request.
      if (e.consent_changed().erasure_request_id().empty()) return absl::OkStatus();
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

void RequestStore::RememberVerifiedReceipt(const audit::VerifiedReceiptEnvelope& v) const {
  std::lock_guard<std::mutex> l(mu_);
  lifecycle_.RememberVerified(v);
}

absl::Status RequestStore::CheckReceipt(const v1::ReceiptRecorded& rr, bool refusal_allowed,
                                        v1::Receipt* verified) const {
  std::lock_guard<std::mutex> l(mu_);
  return lifecycle_.CheckReceipt(rr, refusal_allowed, verified);
}

void RequestStore::SetEntryReader(EntryReader reader, EntriesReader entries) {
  std::lock_guard<std::mutex> l(mu_);
  const bool first = !reader_;
  if (!entries && reader)
    entries = [reader](absl::Span<const uint64_t> seqs) -> absl::StatusOr<std::vector<std::string>> {
      std::vector<std::string> out;
      out.reserve(seqs.size());
      for (const uint64_t seq : seqs) {
        LETHE_ASSIGN_OR_RETURN(std::string bytes, reader(seq));
        out.push_back(std::move(bytes));
      }
      return out;
    };
  reader_ = std::move(reader);
  entries_reader_ = std::move(entries);
  if (first && reader_ && vacuum_waits_) lifecycle_.UseVacuumWaits(vacuum_waits_.get());
}

void RequestStore::MarkDurable(uint64_t end) {
  std::lock_guard<std::mutex> l(mu_);
  // What cannot be compacted now (a scratch file that cannot be written) stays whole, and is
  // tried again at the next call.
  while (!ending_.empty() && ending_.front().first < end && Compact(ending_.front().second)) ending_.pop_front();
}

bool RequestStore::Compact(const std::string& id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return true;
  const RequestRecord& r = it->second;
  std::vector<uint64_t> entries = {r.submitted_entry, r.completed_entry};
  if (r.released_entry != 0) entries.push_back(r.released_entry);
  if (r.consent_entry != 0) entries.push_back(r.consent_entry);
  entries.insert(entries.end(), r.command_entries.begin(), r.command_entries.end());
  entries.insert(entries.end(), r.addition_entries.begin(), r.addition_entries.end());
  for (const auto& x : r.extensions) entries.push_back(x.entry);
  for (const auto& d : r.domains) {
    if (d.receipt) entries.push_back(d.receipt_entry);
    if (d.physical) entries.push_back(d.physical_entry);
  }
  std::sort(entries.begin(), entries.end());
  std::string packed;
  uint64_t last = 0;
  for (uint64_t seq : entries) {
    AppendAscending(packed, last, seq);
    last = seq;
  }
  const Submission sub{r.submitted_entry, stories_->Append(packed) + 1, static_cast<uint32_t>(packed.size())};
  if (!submissions_->WriteAt(r.ordinal * kSubmissionBytes, EncodeSubmission(sub)).ok())
    return false;  // the story appended is never pointed at
  ended_requests_->Put(audit::RequestLifecycle::IdDigest(id), r.ordinal + 1);
  whole_.erase(r.submitted_entry);
  requests_.erase(it);
  ++compacted_;
  return true;
}

absl::Status RequestStore::AddToStory(const std::string& id, uint64_t seq) {
  LETHE_ASSIGN_OR_RETURN(const std::optional<uint64_t> place,
                         ended_requests_->Get(audit::RequestLifecycle::IdDigest(id)));
  if (!place || *place == kEndedWhole)
    return absl::InternalError(absl::StrCat("ledger entry ", seq, ": a receipt of request ", Quote(id, 40),
                                            ", which is neither held nor compacted"));
  LETHE_ASSIGN_OR_RETURN(Submission sub, ReadSubmission(*place - 1));
  LETHE_ASSIGN_OR_RETURN(std::string packed, ReadStory(sub));
  const std::vector<uint64_t> entries = UnpackAscending(packed);
  AppendAscending(packed, entries.empty() ? 0 : entries.back(), seq);
  sub.story = stories_->Append(packed) + 1;
  sub.length = static_cast<uint32_t>(packed.size());
  return submissions_->WriteAt((*place - 1) * kSubmissionBytes, EncodeSubmission(sub));
}

absl::StatusOr<RequestStore::EntriesRead> RequestStore::ReadBack(const std::vector<const std::string*>& stories,
                                                                 const EntriesReader& reader) {
  if (!reader) return absl::InternalError("ended request: no ledger to read it back from");
  EntriesRead read;
  for (const std::string* packed : stories) {
    const std::vector<uint64_t> seqs = UnpackAscending(*packed);
    read.seqs.insert(read.seqs.end(), seqs.begin(), seqs.end());
  }
  std::sort(read.seqs.begin(), read.seqs.end());
  read.seqs.erase(std::unique(read.seqs.begin(), read.seqs.end()), read.seqs.end());
  LETHE_ASSIGN_OR_RETURN(read.bytes, reader(read.seqs));
  if (read.bytes.size() != read.seqs.size())
    return absl::InternalError(absl::StrCat("ended requests: ", read.seqs.size(), " ledger entries asked for, ",
                                            read.bytes.size(), " read back"));
  return read;
}

absl::StatusOr<RequestRecord> RequestStore::Load(uint64_t submitted_entry, const std::string& packed,
                                                 const EntriesRead& read) {
  RequestRecord r;
  for (const uint64_t seq : UnpackAscending(packed)) {
    const auto at = std::lower_bound(read.seqs.begin(), read.seqs.end(), seq);
    if (at == read.seqs.end() || *at != seq)
      return absl::InternalError(absl::StrCat("ledger entry ", seq, ": not among the entries read back"));
    const std::string& bytes = read.bytes[at - read.seqs.begin()];
    v1::LedgerEntry e;
    if (!e.ParseFromString(bytes))
      return absl::DataLossError(absl::StrCat("ledger entry ", seq, ": does not parse as it did when recorded"));
    ApplyToRecord(r, seq, e);
  }
  if (r.submitted_entry != submitted_entry || r.completed_entry == 0)
    return absl::DataLossError(absl::StrCat("ledger entry ", submitted_entry,
                                            ": not the request lethed recorded there"));
  r.command_ids.clear();
  return r;
}

RequestStore::Held RequestStore::held() const {
  std::lock_guard<std::mutex> l(mu_);
  return Held{requests_.size(), compacted_, lifecycle_.awaiting_vacuum_in_memory()};
}

std::optional<int64_t> RequestStore::ReceivedUnixMs(const std::string& id) const {
  std::unique_lock<std::mutex> l(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  return it->second.submitted.received_unix_ms();
}

absl::StatusOr<RequestRecord> RequestStore::Get(const std::string& id) const {
  std::unique_lock<std::mutex> l(mu_);
  if (auto it = requests_.find(id); it != requests_.end()) return it->second;
  if (!ended_requests_) return absl::NotFoundError("request_id: no request " + Quote(id, 40));
  LETHE_ASSIGN_OR_RETURN(const std::optional<uint64_t> place,
                         ended_requests_->Get(audit::RequestLifecycle::IdDigest(id)));
  if (!place) return absl::NotFoundError("request_id: no request " + Quote(id, 40));
  // Ended requests are held whole until compacted, and found above until then.
  if (*place == kEndedWhole)
    return absl::InternalError("request_id: ended request " + Quote(id, 40) + " is neither held nor compacted");
  LETHE_ASSIGN_OR_RETURN(const Submission sub, ReadSubmission(*place - 1));
  LETHE_ASSIGN_OR_RETURN(const std::string packed, ReadStory(sub));
  EntriesReader reader = entries_reader_;
  l.unlock();  // read the ledger without holding the store
  // (Another id with the same 128-bit digest would take a SHA-256 collision.)
  LETHE_ASSIGN_OR_RETURN(const EntriesRead read, ReadBack({&packed}, reader));
  LETHE_ASSIGN_OR_RETURN(RequestRecord r, Load(sub.entry, packed, read));
  r.ordinal = *place - 1;
  return r;
}

absl::StatusOr<std::vector<RequestRecord>> RequestStore::List() const {
  bool more = false;
  return ListPage(0, std::numeric_limits<size_t>::max(), std::nullopt, &more);
}

size_t RequestStore::InProgress() const {
  std::lock_guard<std::mutex> l(mu_);
  return in_progress_.size();
}

RequestStore::Tally RequestStore::Count(absl::Time now) const {
  std::lock_guard<std::mutex> l(mu_);
  Tally t;
  t.in_progress = in_progress_.size();
  t.completed = completed_;
  t.done_with_gaps = done_with_gaps_;
  t.failed = failed_;
  for (const auto& [entry, id] : in_progress_) {
    const RequestRecord& r = requests_.at(id);
    if (r.Overdue(now)) ++t.overdue;
    for (const auto& d : r.domains) t.domains_needing_identity += d.state == v1::NEEDS_IDENTITY ? 1 : 0;
  }
  return t;
}

absl::StatusOr<std::vector<RequestRecord>> RequestStore::ListPage(uint64_t after, size_t limit,
                                                                  std::optional<absl::Time> overdue_at,
                                                                  bool* more) const {
  std::unique_lock<std::mutex> l(mu_);
  // Ended requests are collected as (entry, packed story) and read back once the lock is
  // released.
  struct Item {
    uint64_t entry, ordinal;
    std::optional<RequestRecord> whole;
    std::string packed;
  };
  std::vector<Item> page;
  *more = false;
  if (overdue_at) {  // open requests only: all held whole
    for (auto w = in_progress_.upper_bound(after); w != in_progress_.end(); ++w) {
      const RequestRecord& r = requests_.at(w->second);
      if (!r.Overdue(*overdue_at)) continue;
      if (page.size() == limit) {
        *more = true;
        break;
      }
      page.push_back(Item{r.submitted_entry, r.ordinal, r, {}});
    }
  } else {
    // Every request, from the submission list: the first recorded after `after`, by binary
    // search (submitted entries ascend with the ordinal), then in order.
    uint64_t lo = 0, hi = submission_count();
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      LETHE_ASSIGN_OR_RETURN(const Submission s, ReadSubmission(mid));
      if (s.entry <= after) lo = mid + 1;
      else hi = mid;
    }
    // The page's records in one read.
    const uint64_t end = lo + std::min<uint64_t>(limit, submission_count() - lo);
    std::string recs((end - lo) * kSubmissionBytes, '\0');
    if (end > lo) LETHE_RETURN_IF_ERROR(submissions_->ReadAt(lo * kSubmissionBytes, recs.size(), recs.data()));
    *more = end < submission_count();
    for (uint64_t o = lo; o < end; ++o) {
      const Submission s = ParseSubmission(recs.data() + (o - lo) * kSubmissionBytes);
      if (s.story == 0) {
        auto w = whole_.find(s.entry);
        if (w == whole_.end())
          return absl::InternalError(absl::StrCat("request list: the request of entry ", s.entry, " is not held"));
        page.push_back(Item{s.entry, o, requests_.at(w->second), {}});
      } else {
        LETHE_ASSIGN_OR_RETURN(std::string packed, ReadStory(s));
        page.push_back(Item{s.entry, o, std::nullopt, std::move(packed)});
      }
    }
  }
  EntriesReader reader = entries_reader_;
  l.unlock();
  std::vector<RequestRecord> out;
  out.reserve(page.size());
  // The ended requests' entries are read kReadBackRequests requests at a time, each time in
  // one call of the reader: neighbours in the ledger are read together.
  for (size_t first = 0; first < page.size(); first += kReadBackRequests) {
    const size_t end = std::min(page.size(), first + kReadBackRequests);
    std::vector<const std::string*> stories;
    for (size_t i = first; i < end; ++i)
      if (!page[i].whole) stories.push_back(&page[i].packed);
    EntriesRead read;
    if (!stories.empty()) {
      LETHE_ASSIGN_OR_RETURN(read, ReadBack(stories, reader));
    }
    for (size_t i = first; i < end; ++i) {
      Item& item = page[i];
      if (item.whole) {
        out.push_back(*std::move(item.whole));
        continue;
      }
      LETHE_ASSIGN_OR_RETURN(RequestRecord r, Load(item.entry, item.packed, read));
      r.ordinal = item.ordinal;
      out.push_back(std::move(r));
    }
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

const AgentRecord* RequestStore::CurrentAgentLocked(const std::string& domain) const {
  const AgentRecord* out = nullptr;
  for (const auto& a : agents_)
    if (a.domain == domain && !a.revoked && !a.encryption_public_key.empty()) out = &a;
  return out;
}

std::optional<AgentRecord> RequestStore::CurrentAgent(const std::string& domain) const {
  std::lock_guard<std::mutex> l(mu_);
  const AgentRecord* a = CurrentAgentLocked(domain);
  if (a == nullptr) return std::nullopt;
  return *a;
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
  return PendingLocked(now, expiry_margin, /*to_reissue=*/false);
}

std::vector<PendingCommand> RequestStore::ToReissue(absl::Time now, absl::Duration expiry_margin) const {
  std::lock_guard<std::mutex> l(mu_);
  return PendingLocked(now, expiry_margin, /*to_reissue=*/true);
}

std::vector<PendingCommand> RequestStore::PendingLocked(absl::Time now, absl::Duration expiry_margin,
                                                        bool to_reissue) const {
  std::vector<PendingCommand> out;
  for (const auto& [entry, id] : in_progress_) {
    const RequestRecord& r = requests_.at(id);
    if (to_reissue && absl::FromUnixMillis(r.due_unix_ms) < now) continue;
    for (const auto& d : r.domains) {
      if (d.state != v1::PENDING || d.command_id.empty()) continue;
      const CommandRecord& c = commands_.at(d.command_id);
      const bool expiring = absl::FromUnixMillis(c.not_after_unix_ms) - expiry_margin <= now;
      if (to_reissue && !expiring) {
        const AgentRecord* current = CurrentAgentLocked(c.domain);
        if (current == nullptr || current->encryption_key_id == c.recipient_key_id) continue;
      }
      out.push_back(PendingCommand{c, expiring, r.due_unix_ms});
    }
  }
  return out;
}

absl::StatusOr<std::vector<uint64_t>> RequestStore::EvidenceEntries(const std::string& request_id) const {
  LETHE_ASSIGN_OR_RETURN(RequestRecord r, Get(request_id));
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint64_t> out;
  out.push_back(r.submitted_entry);
  out.insert(out.end(), r.command_entries.begin(), r.command_entries.end());
  for (const auto& d : r.domains) {
    if (!d.receipt) continue;
    out.push_back(d.receipt_entry);
    for (const auto& a : agents_)
      if (a.domain == d.domain && a.key_id == d.agent_key_id) out.push_back(a.entry);
    if (!d.physical) continue;
    out.push_back(d.physical_entry);
    for (const auto& a : agents_)
      if (a.domain == d.domain && a.key_id == d.physical_key_id) out.push_back(a.entry);
  }
  for (const auto& x : r.extensions) out.push_back(x.entry);
  for (uint64_t a : r.addition_entries) out.push_back(a);
  if (r.consent_entry != 0) out.push_back(r.consent_entry);
  if (r.state != v1::IN_PROGRESS) out.push_back(r.completed_entry);
  if (r.released_entry != 0) out.push_back(r.released_entry);
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

bool RequestStore::IsAccess(const std::string& id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = requests_.find(id);
  return it != requests_.end() && it->second.access();
}

std::map<std::string, int64_t> RequestStore::UnreleasedPackages() const {
  std::lock_guard<std::mutex> l(mu_);
  return unreleased_;
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

void RequestStore::NoteAnswered(const std::string& domain) {
  std::lock_guard<std::mutex> l(mu_);
  ++answers_[domain];
}

uint64_t RequestStore::Answers(const std::string& domain) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = answers_.find(domain);
  return it == answers_.end() ? 0 : it->second;
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

static v1::PhysicalState ToPhysicalState(audit::PhysicalBound::State s) {
  switch (s) {
    case audit::PhysicalBound::State::kNotApplicable:
      return v1::PHYSICAL_NOT_APPLICABLE;
    case audit::PhysicalBound::State::kPending:
      return v1::PHYSICAL_PENDING;
    case audit::PhysicalBound::State::kBounded:
      return v1::PHYSICAL_BOUNDED;
    case audit::PhysicalBound::State::kUnbounded:
      return v1::PHYSICAL_UNBOUNDED;
  }
  return v1::PHYSICAL_NOT_APPLICABLE;
}

v1::RequestView ToView(const RequestRecord& r, const RequestStore& store, absl::Time now,
                       const IdentityVault* vault) {
  v1::RequestView v;
  v.set_request_id(r.request_id);
  v.set_kind(r.access() ? "access" : "erasure");
  if (r.released_entry != 0) {
    v.set_package_released_entry(r.released_entry);
    v.set_package_released_unix_ms(r.released_unix_ms);
    v.set_package_release(r.released_reason == v1::PackageReleased::EXPORTED ? "exported" : "expired");
  }
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
  std::vector<std::pair<std::string, audit::PhysicalBound>> bounds;
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
        tp->set_rows_exported(t.rows_exported());
        tp->set_rows_withheld(t.rows_withheld());
        tp->set_basis(t.basis());
        tp->set_retention_period_seconds(t.retention_period_seconds());
        *tp->mutable_columns() = t.columns();
      }
      *dp->mutable_tombstones() = d.receipt->tombstones();
      *dp->mutable_s3() = d.receipt->s3();
      *dp->mutable_sinks() = d.receipt->sinks();
      dp->set_verified_zero_remaining(d.receipt->verified_zero_remaining());
      dp->set_error(d.receipt->error());
      dp->set_agent_key_id(d.agent_key_id);
      dp->set_receipt_entry(d.receipt_entry);
      dp->set_receipt_unix_ms(d.receipt_unix_ms);
      if (!d.receipt->part_sha256().empty()) {
        dp->set_part_sha256(crypto::Hex(d.receipt->part_sha256()));
        dp->set_part_size(d.receipt->part_size());
      }
    }
    if (d.physical) {
      *dp->mutable_vacuumed_tables() = d.physical->tables();
      dp->set_physical_receipt_entry(d.physical_entry);
      dp->set_physical_agent_key_id(d.physical_key_id);
    }
    const audit::PhysicalBound b =
        d.receipt ? audit::DomainPhysicalBound(*d.receipt, d.physical ? &*d.physical : nullptr, r.access())
                  : audit::PhysicalBound();
    dp->set_physical_state(ToPhysicalState(b.state));
    dp->set_logically_erased_unix_ms(b.logically_erased_unix_ms);
    dp->set_physically_gone_by_unix_ms(b.gone_by_unix_ms);
    dp->set_physical_reason(b.reason);
    bounds.emplace_back(d.domain, b);
  }
  // While the request is open, domains that have not answered have no bound yet.
  const audit::PhysicalBound whole =
      r.state == v1::IN_PROGRESS ? audit::PhysicalBound() : audit::RequestPhysicalBound(bounds);
  v.set_physical_state(ToPhysicalState(whole.state));
  v.set_physically_gone_by_unix_ms(whole.gone_by_unix_ms);
  return v;
}

}  // namespace lethe::controlplane
