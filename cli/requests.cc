// `lethectl request erase|get|list|extend|add-identity|certificate|watch`: data-subject
// requests through lethed's SubjectRequests service, their progress per domain, and erasure
// certificates (fetched, or checked offline).
#include "cli/requests.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "audit/certificate.h"
#include "audit/offline_verify.h"
#include "audit/physical.h"
#include "base/status.h"
#include "cli/access.h"
#include "cli/exit_codes.h"
#include "cli/input.h"
#include "cli/ledger.h"
#include "cli/render.h"
#include "crypto/crypto.h"
#include "lethe/v1/api.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {
namespace {

namespace v1 = lethe::v1;

const char* StateName(v1::RequestState s) {
  switch (s) {
    case v1::IN_PROGRESS: return "IN_PROGRESS";
    case v1::COMPLETED: return "COMPLETED";
    case v1::FAILED: return "FAILED";
    case v1::DONE_WITH_GAPS: return "DONE_WITH_GAPS";
    default: return "UNKNOWN";
  }
}

const char* DomainStateName(v1::DomainState s) {
  switch (s) {
    case v1::PENDING: return "PENDING";
    case v1::DONE: return "DONE";
    case v1::DOMAIN_FAILED: return "FAILED";
    case v1::NEEDS_IDENTITY: return "NEEDS_IDENTITY";
    default: return "UNKNOWN";
  }
}

std::string Period(int64_t seconds) {
  constexpr int64_t kDay = 86400;
  if (seconds > 0 && seconds % (365 * kDay) == 0) return absl::StrCat(seconds / (365 * kDay), "y");
  if (seconds > 0 && seconds % kDay == 0) return absl::StrCat(seconds / kDay, "d");
  return absl::StrCat(seconds, "s");
}

// One table's part of a receipt, e.g. "billing.invoices withheld 2 under \"Tax records\" for 7y".
template <typename TableLike>
std::string TableSummary(const TableLike& t, bool access = false) {
  if (access) {
    std::string out = absl::StrFormat("%s %d row(s) exported", t.table(), t.rows_exported());
    if (t.action() == "retain")
      absl::StrAppendFormat(&out, " (retained under \"%s\" for %s)", t.basis(), Period(t.retention_period_seconds()));
    return out;
  }
  if (t.action() == "retain")
    return absl::StrFormat("%s withheld %d under \"%s\" for %s", t.table(), t.rows_withheld(),
                           t.basis(), Period(t.retention_period_seconds()));
  std::string out =
      t.action() == "anonymize"
          ? absl::StrFormat("%s anonymized %d (%s)", t.table(), t.rows_affected(),
                            absl::StrJoin(t.columns(), ", "))
          : absl::StrFormat("%s deleted %d", t.table(), t.rows_affected());
  // Rows the exact comparison left that match after trimming and lower-casing: say so, so
  // that "0 remaining" is not read as "nothing of this person is left".
  if (t.rows_near_match() > 0)
    absl::StrAppendFormat(&out, " (WARNING: %d near match(es) left in place: rows equal to an "
                                "identity after trimming and lower-casing; check them by hand)",
                          t.rows_near_match());
  return out;
}

// When a tombstoned topic's compaction has removed the subject for good, or why no one can say.
std::string TombstoneBound(const v1::TombstoneResult& t) {
  if (t.physically_gone_by_unix_ms() > 0) return "physically gone by " + Time(t.physically_gone_by_unix_ms());
  if (!t.config_read()) return "no bound on physical purge: the topic's configuration could not be read";
  if (t.cleanup_policy().find("compact") == std::string::npos)
    return "no bound on physical purge: the topic is not compacted";
  return "no bound on physical purge: max.compaction.lag.ms is not set";
}

// One S3 bucket entry of a receipt, e.g. "s3 growth-events jsonl: 2 line(s) removed from 1
// object(s), 0 remaining".
std::string S3Summary(const v1::S3Result& b) {
  std::string out = absl::StrFormat("s3 %s %s%s: ", b.bucket(), b.kind(), b.versioned() ? " (versioned)" : "");
  if (b.action() == "retain") {
    absl::StrAppendFormat(&out, "withheld %d %s under \"%s\" for %s",
                          b.kind() == "jsonl" ? b.lines_withheld() : b.objects_withheld(),
                          b.kind() == "jsonl" ? "line(s)" : "object(s)", b.basis(),
                          Period(b.retention_period_seconds()));
    return out;
  }
  if (b.kind() == "jsonl") {
    absl::StrAppendFormat(&out, "%d line(s) removed from %d object(s)", b.lines_removed(), b.objects_rewritten());
  } else {
    absl::StrAppendFormat(&out, "%d object(s) deleted", b.objects_deleted());
  }
  if (b.versions_deleted() > 0) absl::StrAppendFormat(&out, ", %d older version(s) deleted", b.versions_deleted());
  absl::StrAppendFormat(&out, ", %d remaining", b.kind() == "jsonl" ? b.lines_remaining() : b.objects_remaining());
  if (b.physically_gone_by_unix_ms() > 0) absl::StrAppend(&out, ", physically gone ", Time(b.physically_gone_by_unix_ms()));
  if (b.lines_near_match() > 0)
    absl::StrAppendFormat(&out, " (WARNING: %d near match(es) left in place: lines whose field equals an identity "
                                "after trimming and lower-casing; check them by hand)",
                          b.lines_near_match());
  if (b.lines_unreadable() > 0)
    absl::StrAppendFormat(&out, " (WARNING: %d line(s) are not JSON objects and could not be compared)",
                          b.lines_unreadable());
  return out;
}

// One sink of a receipt, e.g. "sink contacts-archive (s3) of topic mesh.growth.contacts: GAP,
// it does not delete on tombstones and nothing covers it".
std::string SinkSummary(const v1::SinkResult& s) {
  std::string out = absl::StrFormat("sink %s (%s) of topic %s: ", s.name(), s.kind(), s.topic());
  if (s.deletes_on_tombstone()) return out + "deletes on the tombstone";
  if (!s.covered_by().empty()) return out + "erased by the domain's " + s.covered_by();
  return out + "GAP: it does not delete on tombstones and nothing covers it, so it keeps the subject's copy";
}

// A vacuumed table of a PHYSICALLY_PURGED receipt, e.g. "public.users: vacuum full at ...".
std::string VacuumSummary(const v1::TableResult& t) {
  return absl::StrFormat("%s: %s at %s", t.table(),
                         t.vacuum() == "observed" ? "vacuum observed (autovacuum or another VACUUM)" : t.vacuum(),
                         Time(t.vacuumed_unix_ms()));
}

// An answered erasure domain's two times ("logically erased 12:00:01, physically gone by
// 12:09:40"), or what the physical bound waits for or lacks; "" when none applies.
std::string TwoTimes(v1::PhysicalState state, int64_t logically_erased, int64_t gone_by, const std::string& reason) {
  const std::string erased = "logically erased " + Time(logically_erased) + ", ";
  switch (state) {
    case v1::PHYSICAL_BOUNDED:
      return erased + "physically gone by " + Time(gone_by);
    case v1::PHYSICAL_PENDING:
      return erased + "physical purge pending: " + reason;
    case v1::PHYSICAL_UNBOUNDED:
      return erased + "physically gone: NO BOUND (a gap): " + reason;
    default:
      return "";
  }
}

// A PHYSICALLY_PURGED receipt: where it is, who signed it, and each table's vacuum.
template <typename Tables>
std::string VacuumsLine(uint64_t entry, const std::string& key_id, const Tables& tables) {
  std::vector<std::string> vacuums;
  for (const auto& t : tables) vacuums.push_back(VacuumSummary(t));
  return absl::StrFormat("PHYSICALLY_PURGED receipt entry %d signed by agent key %s: %s", entry, key_id,
                         absl::StrJoin(vacuums, ", "));
}

// The lines under an answered erasure domain of `request get`.
std::string PhysicalLine(const v1::DomainProgress& d) {
  std::string line = TwoTimes(d.physical_state(), d.logically_erased_unix_ms(), d.physically_gone_by_unix_ms(),
                              d.physical_reason());
  if (line.empty()) return "";
  line = "    " + line;
  if (d.physical_receipt_entry() != 0)
    absl::StrAppend(&line, "\n    ",
                    VacuumsLine(d.physical_receipt_entry(), d.physical_agent_key_id(), d.vacuumed_tables()));
  return line;
}

// The request's physical bound, the latest of its domains'.
std::string RequestPhysicalLine(v1::PhysicalState state, int64_t gone_by) {
  switch (state) {
    case v1::PHYSICAL_BOUNDED:
      return "  physical purge: every erased byte gone by " + Time(gone_by);
    case v1::PHYSICAL_PENDING:
      return "  physical purge: pending (a domain's PHYSICALLY_PURGED receipt has not come yet)";
    case v1::PHYSICAL_UNBOUNDED:
      return "  physical purge: DONE_WITH_GAPS (a store has no bound; see the domains below)";
    default:
      return "";
  }
}

std::string DomainLine(const v1::DomainProgress& d) {
  std::string line = absl::StrFormat("  %-16s %-8s", d.domain(), DomainStateName(d.state()));
  if (d.state() == v1::PENDING) {
    absl::StrAppendFormat(&line, " command %s, published %d time(s)", d.command_id().substr(0, 12),
                          d.attempts());
    if (!d.last_rejection().empty())
      absl::StrAppendFormat(&line, "; the agent refused it: %s", d.last_rejection());
  } else if (d.state() == v1::NEEDS_IDENTITY) {
    absl::StrAppendFormat(&line, " keyed by %s, which the request does not carry "
                                 "(lethectl request add-identity)",
                          absl::StrJoin(d.needed_identity_types(), " and "));
  } else if (d.state() == v1::DONE && !d.part_sha256().empty()) {
    std::vector<std::string> tables;
    for (const auto& t : d.tables()) tables.push_back(TableSummary(t, /*access=*/true));
    absl::StrAppendFormat(&line, " %s; part of %d bytes (sha256 %s); receipt entry %d signed by agent key %s",
                          absl::StrJoin(tables, ", "), d.part_size(), d.part_sha256().substr(0, 16),
                          d.receipt_entry(), d.agent_key_id());
  } else if (d.state() == v1::DONE) {
    std::vector<std::string> tables;
    for (const auto& t : d.tables()) tables.push_back(TableSummary(t));
    for (const auto& t : d.tombstones())
      tables.push_back(absl::StrFormat("tombstone %s[%d]@%d (%s)", t.topic(), t.partition(), t.offset(),
                                       TombstoneBound(t)));
    for (const auto& b : d.s3()) tables.push_back(S3Summary(b));
    for (const auto& sk : d.sinks()) tables.push_back(SinkSummary(sk));
    absl::StrAppendFormat(&line, " %s; 0 remaining verified; receipt entry %d signed by agent key %s",
                          absl::StrJoin(tables, ", "), d.receipt_entry(), d.agent_key_id());
  } else {
    absl::StrAppendFormat(&line, " %s (receipt entry %d)", d.error(), d.receipt_entry());
  }
  return line;
}

void PrintRequest(const v1::RequestView& r) {
  std::cout << "request " << r.request_id() << "  " << StateName(r.state())
            << (r.overdue() ? "  OVERDUE" : "") << "\n";
  std::cout << "  kind: " << r.kind() << "   identity types: ";
  for (int i = 0; i < r.identity_types_size(); ++i) std::cout << (i ? ", " : "") << r.identity_types(i);
  if (!r.scope_purpose().empty())
    std::cout << "\n  planned by consent withdrawal for purpose " << r.scope_purpose()
              << " (ledger entry " << r.consent_entry() << ", change " << r.consent_change_id()
              << "); scope: that purpose's domains";
  std::cout << "\n  received " << Time(r.received_unix_ms()) << "   due " << Time(r.due_unix_ms())
            << "   completed " << Time(r.completed_unix_ms()) << "\n";
  for (const auto& x : r.extensions())
    std::cout << "  extended by " << Period(x.extension_seconds()) << " on " << Time(x.recorded_unix_ms())
              << " (entry " << x.entry() << "): "
              << (x.reason_shredded() ? "(reason shredded with the request)" : x.reason()) << "\n";
  if (r.kind() == "access" && r.state() != v1::IN_PROGRESS) {
    if (r.package_released_entry() != 0)
      std::cout << "  package " << r.package_release() << " at " << Time(r.package_released_unix_ms())
                << " (ledger entry " << r.package_released_entry() << "); its key and parts are destroyed\n";
    else
      std::cout << "  package held until exported (lethectl request export " << r.request_id() << " --out FILE)"
                << (r.package_expires_unix_ms() != 0 ? " or destroyed unexported at " + Time(r.package_expires_unix_ms())
                                                       : std::string())
                << "\n";
  }
  std::cout << "  ledger entries: submitted " << r.submitted_entry();
  if (r.completed_entry() != 0) std::cout << ", completed " << r.completed_entry();
  std::cout << "   policy " << r.policy_hash().substr(0, 16) << "\n";
  if (std::string p = RequestPhysicalLine(r.physical_state(), r.physically_gone_by_unix_ms()); !p.empty())
    std::cout << p << "\n";
  for (const auto& d : r.domains()) {
    std::cout << DomainLine(d) << "\n";
    if (std::string p = PhysicalLine(d); !p.empty()) std::cout << p << "\n";
  }
}

// One duration syntax for every flag: a positive number with a unit, ms, s, m, h, d (24h), w

// What an operator must do for an open request: for each domain that lacks an identity type
// (NEEDS_IDENTITY) or refused its command for policy drift, the step that unblocks it. With
// `only_when_stuck`, "" while some other domain may still answer.
std::string NextStep(const v1::RequestView& v, bool only_when_stuck = true) {
  if (v.state() != v1::IN_PROGRESS) return "";
  std::vector<std::string> steps;
  bool waiting = false;
  for (const auto& d : v.domains()) {
    if (d.state() == v1::NEEDS_IDENTITY) {
      std::vector<std::string> flags;
      for (const auto& t : d.needed_identity_types()) flags.push_back("--identity " + t + "=...");
      steps.push_back(absl::StrFormat("domain %s needs %s: lethectl request add-identity %s %s",
                                      d.domain(), absl::StrJoin(d.needed_identity_types(), " and "),
                                      v.request_id(), absl::StrJoin(flags, " ")));
    } else if (d.state() == v1::PENDING && !d.last_rejection().empty()) {
      steps.push_back(absl::StrFormat(
          "domain %s refused its command: %s (deploy the active policy, `lethectl policy show --yaml`, "
          "to its agent)", d.domain(), d.last_rejection()));
    } else if (d.state() == v1::PENDING) {
      waiting = true;
    }
  }
  return waiting && only_when_stuck ? "" : absl::StrJoin(steps, "\n");
}

// Set while --wait follows a recorded request: Ctrl-C then says how to follow it again.
char g_interrupt_note[256];
void OnInterrupt(int) {
  const ssize_t n = static_cast<ssize_t>(std::strlen(g_interrupt_note));
  if (n > 0) (void)!::write(2, g_interrupt_note, static_cast<size_t>(n));
  ::_exit(130);
}
void NoteOnInterrupt(const std::string& id) {
  std::snprintf(g_interrupt_note, sizeof(g_interrupt_note),
                "\nlethectl: stopped following; request %s is recorded and goes on. Follow it "
                "with: lethectl request watch %s\n",
                id.c_str(), id.c_str());
  ::signal(SIGINT, OnInterrupt);
  ::signal(SIGTERM, OnInterrupt);
}

int Watch(const Global& g, const std::string& id, absl::Duration timeout) {
  // Progress lines appear as they happen, also through a pipe (| tee).
  std::cout.setf(std::ios::unitbuf);
  NoteOnInterrupt(id);
  auto api = v1::SubjectRequests::NewStub(Connect(g));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::GetRequestRequest req;
  req.set_request_id(id);
  auto reader = api->Watch(&ctx, req);
  v1::RequestView view, last;
  bool any = false;
  // On a terminal each domain keeps one line, rewritten in place as it changes; into a pipe
  // or file, a line is added per change.
  const bool redraw = !g.json() && ::isatty(STDOUT_FILENO) == 1;
  int drawn = 0;
  while (reader->Read(&view)) {
    if (redraw) {
      if (drawn > 0) std::cout << "\x1b[" << drawn << "A";
      for (const auto& d : view.domains()) std::cout << "\r\x1b[2K" << DomainLine(d) << "\n";
      drawn = view.domains_size();
    } else if (!g.json()) {
      for (const auto& d : view.domains()) {
        bool changed = true;
        for (const auto& p : last.domains())
          if (p.domain() == d.domain()) changed = p.state() != d.state();
        if (changed || !any) std::cout << DomainLine(d) << "\n";
      }
    }
    last = view;
    any = true;
    if (view.state() != v1::IN_PROGRESS) break;
    if (const std::string next = NextStep(view); !next.empty()) {
      // Nothing will change until someone acts: say what, and stop waiting.
      ctx.TryCancel();
      if (g.json()) std::cout << Json(view);
      std::cerr << "lethectl: request " << id << " cannot progress until an operator acts:\n"
                << next << "\n";
      (void)reader->Finish();
      return kExitNeedsOperator;
    }
  }
  grpc::Status s = reader->Finish();
  if (any && last.state() != v1::IN_PROGRESS) {
    if (g.json()) {
      std::cout << Json(last);
    } else {
      std::cout << "request " << id << " " << StateName(last.state()) << " at "
                << Time(last.completed_unix_ms()) << "\n";
    }
    return last.state() == v1::COMPLETED ? 0 : last.state() == v1::DONE_WITH_GAPS ? kExitGaps : kExitFailed;
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    std::cerr << "lethectl: timed out after " << absl::FormatDuration(timeout)
              << " waiting for request " << id << " (still IN_PROGRESS)\n";
    if (g.json() && any) std::cout << Json(last);
    return kExitTimeout;
  }
  if (any && s.error_code() != grpc::StatusCode::OK)
    std::cerr << "lethectl: the watch of request " << id
              << " was cut off; it goes on: lethectl request watch " << id << "\n";
  return FailGrpc("request watch", s);
}

// `request erase` and `request access`: the same submission, of either kind.
int RequestSubmit(const Global& g, v1::RequestKind kind, const std::vector<std::string>& identities,
                  const std::string& identities_from, const std::string& reason,
                  const std::string& reason_from, bool wait, const std::string& timeout_text,
                  bool allow_duplicate) {
  const std::string what = kind == v1::ACCESS ? "request access" : "request erase";
  auto timeout = ParseTimeout(timeout_text);
  if (!timeout.ok()) return Fail(what, timeout.status());
  v1::SubmitRequest req;
  req.set_kind(kind);
  if (absl::Status st = ParseIdentities(identities, identities_from, req.mutable_identities()); !st.ok())
    return Fail(what, st);
  auto reason_text = ReasonText(reason, reason_from);
  if (!reason_text.ok()) return Fail(what, reason_text.status());
  req.set_reason(*reason_text);
  auto api = v1::SubjectRequests::NewStub(Connect(g));
  if (!allow_duplicate && kind != v1::ACCESS) {
    // A second request for a person with one open is usually a mistake (a re-run script, a
    // double click): say which, and record nothing unless told to.
    v1::FindOpenRequest find;
    *find.mutable_identities() = req.identities();
    v1::FindOpenResponse found;
    grpc::ClientContext fctx;
    fctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    if (grpc::Status fs = api->FindOpen(&fctx, find, &found); !fs.ok())
      return FailGrpc(what, fs);
    if (found.matches_size() > 0) {
      std::cerr << "lethectl request erase: not submitted: an open request already covers this subject:\n";
      for (const auto& m : found.matches())
        std::cerr << "  " << m.request_id() << " (same " << absl::StrJoin(m.identity_types(), " and ")
                  << "): lethectl request get " << m.request_id() << "\n";
      std::cerr << "  to record another anyway: --allow-duplicate\n";
      return kExitFailed;
    }
  }
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  grpc::Status s = api->Submit(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc(what, s);
  if (!wait) {
    if (g.json()) {
      std::cout << Json(resp.request());
    } else {
      // The id first (scripts take the first line), then where each domain starts.
      std::cout << resp.request_id() << "\n";
      for (const auto& d : resp.request().domains()) std::cout << DomainLine(d) << "\n";
      if (const std::string next = NextStep(resp.request(), /*only_when_stuck=*/false); !next.empty())
        std::cout << "needs an operator:\n" << next << "\n";
    }
    return 0;
  }
  if (!g.json()) {
    std::cout << "request " << resp.request_id() << " recorded; waiting for "
              << resp.request().domains_size() << " domain(s)\n";
  }
  return Watch(g, resp.request_id(), *timeout);
}

int RequestGet(const Global& g, const std::string& id) {
  auto api = v1::SubjectRequests::NewStub(Connect(g));
  v1::GetRequestRequest req;
  req.set_request_id(id);
  v1::RequestView resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Get(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("request get", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    PrintRequest(resp);
  }
  return 0;
}

int RequestExtend(const Global& g, const std::string& id, const std::string& by,
                  const std::string& reason) {
  auto d = ParseFlagDuration("--by", by);
  if (!d.ok()) return Fail("request extend", d.status());
  v1::ExtendRequest req;
  req.set_request_id(id);
  req.set_extension_seconds(absl::ToInt64Seconds(*d));
  req.set_reason(reason);
  auto api = v1::SubjectRequests::NewStub(Connect(g));
  v1::RequestView resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Extend(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("request extend", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    std::cout << "request " << id << ": due date moved to " << Time(resp.due_unix_ms()) << "\n";
  }
  return 0;
}

int RequestAddIdentity(const Global& g, const std::string& id,
                       const std::vector<std::string>& identities, const std::string& identities_from) {
  v1::AddIdentitiesRequest req;
  req.set_request_id(id);
  if (absl::Status st = ParseIdentities(identities, identities_from, req.mutable_identities()); !st.ok())
    return Fail("request add-identity", st);
  auto api = v1::SubjectRequests::NewStub(Connect(g));
  v1::RequestView resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->AddIdentities(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("request add-identity", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    PrintRequest(resp);
  }
  return 0;
}

int RequestList(const Global& g, bool overdue, const std::string& kind) {
  auto api = v1::SubjectRequests::NewStub(Connect(g));
  v1::ListRequestsResponse resp;
  v1::ListRequestsRequest req;
  req.set_overdue(overdue);
  if (kind == "access") {
    req.set_kind(v1::ACCESS);
  } else if (kind == "erasure") {
    req.set_kind(v1::ERASURE);
  } else if (!kind.empty()) {
    return Fail("request list", absl::InvalidArgumentError("--kind: erasure or access, got " + Quote(kind, 16)));
  }
  req.set_page_size(1000);
  do {  // every page
    v1::ListRequestsResponse page;
    grpc::ClientContext ctx;
    grpc::Status s = api->List(&ctx, req, &page);
    if (!s.ok()) return FailGrpc("request list", s);
    for (auto& r : *page.mutable_requests()) *resp.add_requests() = std::move(r);
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  if (overdue && resp.requests().empty()) {
    std::cout << "no overdue request\n";
    return 0;
  }
  std::cout << absl::StrFormat("%-32s %-8s %-12s %-20s %-20s %s\n", "REQUEST", "KIND", "STATE",
                               "RECEIVED", "DUE", "DOMAINS (done/total)");
  for (const auto& r : resp.requests()) {
    int done = 0;
    for (const auto& d : r.domains()) done += d.state() == v1::DONE || d.state() == v1::DOMAIN_FAILED;
    std::cout << absl::StrFormat("%-32s %-8s %-12s %-20s %-20s %d/%d\n", r.request_id(), r.kind(),
                                 r.overdue() ? "OVERDUE" : StateName(r.state()),
                                 Time(r.received_unix_ms()), Time(r.due_unix_ms()), done,
                                 r.domains_size());
  }
  return 0;
}

std::string OutcomeName(v1::RequestCompleted::Outcome o) {
  return o == v1::RequestCompleted::COMPLETED        ? "COMPLETED"
         : o == v1::RequestCompleted::DONE_WITH_GAPS ? "DONE_WITH_GAPS"
                                                     : "FAILED";
}


// The physical bound of each erasure domain of a verified certificate, and of the request.
std::vector<std::pair<std::string, lethe::audit::PhysicalBound>> CertifiedBounds(
    const lethe::audit::CertificateReport& r) {
  std::vector<std::pair<std::string, lethe::audit::PhysicalBound>> out;
  for (const auto& d : r.domains)
    out.emplace_back(d.domain, lethe::audit::DomainPhysicalBound(d.receipt, d.physical ? &*d.physical : nullptr,
                                                                 r.access));
  return out;
}

v1::PhysicalState ToPhysicalState(lethe::audit::PhysicalBound::State s) {
  using S = lethe::audit::PhysicalBound::State;
  return s == S::kBounded ? v1::PHYSICAL_BOUNDED
         : s == S::kPending ? v1::PHYSICAL_PENDING
         : s == S::kUnbounded ? v1::PHYSICAL_UNBOUNDED
                              : v1::PHYSICAL_NOT_APPLICABLE;
}

void PrintCertificate(const lethe::audit::CertificateReport& r) {
  std::cout << (r.access ? "Access" : "Erasure") << " certificate for request " << r.request_id << ": "
            << OutcomeName(r.outcome) << "\n"
            << "  log        " << r.origin << ", checkpoint of " << r.checkpoint_size
            << " entries (signature verified)\n"
            << "  identities " << absl::StrJoin(r.identity_types, ", ") << " (as keyed hashes only)\n"
            << "  received   " << Time(r.received_unix_ms) << "   due " << Time(r.due_unix_ms)
            << (r.extensions ? absl::StrCat(" (after ", r.extensions, " extension(s))") : "")
            << "   completed " << Time(r.completed_unix_ms) << "\n";
  if (!r.scope_purpose.empty())
    std::cout << "  scope      the domains of purpose " << r.scope_purpose
              << ", planned by the consent withdrawal included below\n";
  const std::vector<std::pair<std::string, lethe::audit::PhysicalBound>> bounds = CertifiedBounds(r);
  for (size_t i = 0; i < r.domains.size(); ++i) {
    const lethe::audit::CertifiedDomain& d = r.domains[i];
    std::cout << "  " << absl::StrFormat("%-16s", d.domain) << " receipt entry " << d.receipt_entry
              << ", signed by agent key " << d.agent_key_id << ": "
              << (d.receipt.outcome() != v1::Receipt::COMPLETED ? "FAILED: " + d.receipt.error()
                  : r.access ? absl::StrFormat("part gathered, %d bytes, sha256 %s", d.receipt.part_size(),
                                               lethe::crypto::Hex(d.receipt.part_sha256()))
                             : std::string("purged"))
              << "\n";
    for (const auto& t : d.receipt.tables())
      std::cout << "      " << TableSummary(t, r.access)
                << (t.action() == "retain" || r.access ? "" : ", 0 remaining") << "\n";
    for (const auto& t : d.receipt.tombstones()) {
      std::cout << "      tombstone " << t.topic() << " partition " << t.partition() << " offset " << t.offset();
      if (t.config_read())
        std::cout << " (cleanup.policy=" << t.cleanup_policy() << ", delete.retention.ms="
                  << t.delete_retention_ms() << ", max.compaction.lag.ms=" << t.max_compaction_lag_ms() << ")";
      else
        std::cout << " (topic configuration not readable)";
      std::cout << ", " << TombstoneBound(t);
      std::cout << "\n";
    }
    for (const auto& b : d.receipt.s3()) std::cout << "      " << S3Summary(b) << "\n";
    for (const auto& sk : d.receipt.sinks()) std::cout << "      " << SinkSummary(sk) << "\n";
    if (r.access || d.receipt.outcome() != v1::Receipt::COMPLETED) continue;
    const lethe::audit::PhysicalBound& b = bounds[i].second;
    std::cout << "      "
              << TwoTimes(ToPhysicalState(b.state), b.logically_erased_unix_ms, b.gone_by_unix_ms, b.reason) << "\n";
    if (d.physical)
      std::cout << "      " << VacuumsLine(d.physical_entry, d.physical_key_id, d.physical->tables()) << "\n";
  }
  const lethe::audit::PhysicalBound whole = lethe::audit::RequestPhysicalBound(bounds);
  if (std::string p = RequestPhysicalLine(ToPhysicalState(whole.state), whole.gone_by_unix_ms); !p.empty())
    std::cout << p << "\n";
  std::cout << "  " << r.entries << " ledger entries, each proven included in the checkpointed log\n";
}

int RequestCertificate(const Global& g, const std::string& id, const std::string& out,
                       const std::string& pub_path) {
  auto api = v1::Ledger::NewStub(Connect(g));
  v1::GetCertificateRequest req;
  req.set_request_id(id);
  v1::ErasureCertificate cert;
  grpc::ClientContext ctx;
  grpc::Status s = api->GetCertificate(&ctx, req, &cert);
  if (!s.ok()) return FailGrpc("request certificate", s);
  std::string warning;
  auto view = FetchCheckpoint(g, false);
  if (!view.ok()) return Fail("request certificate", view.status());
  auto key = lethe::audit::TrustedKey(pub_path, view->public_key_pem(), &warning);
  if (!key.ok()) return Fail("request certificate", key.status());
  auto report = lethe::audit::VerifyCertificate(cert, *key);
  if (!report.ok()) return Fail("request certificate", report.status());
  std::string json = Json(cert);
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  if (out.empty()) {
    std::cout << json;
  } else {
    if (auto st = lethe::WriteFileAtomic(out, json, 0644); !st.ok())
      return Fail("request certificate", st);
    if (g.json()) {
      std::cout << nlohmann::json{{"out", out}, {"request_id", id}, {"verified", true}}.dump(2) << "\n";
      return 0;
    }
    PrintCertificate(*report);
    std::cout << "written to " << out << "; check it with: lethectl request certificate --verify "
              << out << " --public-key LETHED.pub\n";
  }
  return 0;
}

int RequestCertificateVerify(const Global& g, const std::string& file, const std::string& pub_path) {
  if (pub_path.empty())
    return Fail("request certificate --verify", absl::InvalidArgumentError("--verify needs --public-key"));
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("request certificate --verify", key.status());
  auto text = lethe::ReadFile(file);
  if (!text.ok()) return Fail("request certificate --verify", text.status());
  v1::ErasureCertificate cert;
  if (!google::protobuf::util::JsonStringToMessage(*text, &cert).ok())
    return Fail("request certificate --verify", absl::InvalidArgumentError(file + ": not a certificate (JSON)"));
  auto report = lethe::audit::VerifyCertificate(cert, *key);
  if (!report.ok()) {
    std::cerr << "certificate: INVALID: " << report.status().message() << "\n";
    return 1;
  }
  if (g.json()) {
    const lethe::audit::PhysicalBound whole = lethe::audit::RequestPhysicalBound(CertifiedBounds(*report));
    std::cout << nlohmann::json{{"ok", true},
                                {"request_id", report->request_id},
                                {"outcome", OutcomeName(report->outcome)},
                                {"checkpoint_size", report->checkpoint_size},
                                {"physical_state", v1::PhysicalState_Name(ToPhysicalState(whole.state))},
                                {"physically_gone_by_unix_ms", whole.gone_by_unix_ms}}
                     .dump(2)
              << "\n";
  } else {
    PrintCertificate(*report);
    std::cout << "certificate: VALID\n";
  }
  return 0;
}

}  // namespace

void AddRequestCommands(CLI::App& app, Context& ctx) {
  // The flags' values, kept alive by the callbacks that read them.
  struct Flags {
    std::vector<std::string> identities;
    std::string identities_from, reason_from;
    std::string reason, timeout = "5m", id;
    bool wait = false, allow_duplicate = false, overdue = false;
    std::string kind;
    std::string by;
    std::string cert_verify, cert_out, cert_key;
    std::string format = "json";
  };
  auto f = std::make_shared<Flags>();
  auto* request = app.add_subcommand("request", "data-subject requests")->require_subcommand(1);
  ctx.examples[request] =
      "printf 'email=alice@example.com\\n' | lethectl request erase --identities-from - --wait";
  // What `request erase` and `request access` both take.
  auto add_submit_flags = [f](CLI::App* cmd, const char* reason_help, const char* wait_help) {
    cmd->add_option("--identity", f->identities,
                    "TYPE=VALUE, repeatable (seen by ps and shell history: prefer --identities-from)");
    cmd->add_option("--identities-from", f->identities_from, "FILE, or - for standard input: one TYPE=VALUE a line");
    cmd->add_option("--reason", f->reason, reason_help);
    cmd->add_option("--reason-from", f->reason_from, "FILE, or - for standard input: the reason");
    cmd->add_flag("--wait", f->wait, wait_help);
    cmd->add_option("--timeout", f->timeout, "with --wait: give up after this long (e.g. 90s, 5m)")
        ->capture_default_str();
  };
  auto* erase = request->add_subcommand("erase", "erase a person from every domain that holds them");
  add_submit_flags(erase, "why (kept encrypted, shredded on completion)",
                   "follow progress until the request completes (exit 4 at once if it needs an operator)");
  erase->add_flag("--allow-duplicate", f->allow_duplicate,
                  "submit even when an open request already covers one of these identities");
  erase->callback([&ctx, f] {
    ctx.rc = RequestSubmit(ctx.g, v1::ERASURE, f->identities, f->identities_from, f->reason, f->reason_from,
                           f->wait, f->timeout, f->allow_duplicate);
  });
  auto* access = request->add_subcommand(
      "access", "gather what every domain holds of a person into a package (GDPR Art. 15, 20)");
  add_submit_flags(access, "why (kept encrypted, shredded with the package)",
                   "follow progress until every domain has answered (exit 4 at once if it needs an operator)");
  access->callback([&ctx, f] {
    ctx.rc = RequestSubmit(ctx.g, v1::ACCESS, f->identities, f->identities_from, f->reason, f->reason_from,
                           f->wait, f->timeout, /*allow_duplicate=*/true);
  });
  ctx.examples[access] =
      "printf 'email=bob@example.com\\n' | lethectl request access --identities-from - --wait";
  ctx.examples[erase] =
      "printf 'email=alice@example.com\\nuser_id=73310042\\n' | lethectl request erase --identities-from - --wait";
  auto* get = request->add_subcommand("get", "show one request, per domain");
  get->add_option("id", f->id, "request id")->required();
  get->callback([&ctx, f] { ctx.rc = RequestGet(ctx.g, f->id); });
  ctx.examples[get] = "lethectl request get 3f2a9c0d1e2b4a5c6d7e8f9012345678 -o json";
  auto* list = request->add_subcommand("list", "list requests with their due dates");
  list->add_flag("--overdue", f->overdue, "only open requests past their due date");
  list->add_option("--kind", f->kind, "only requests of this kind: erasure or access");
  list->callback([&ctx, f] { ctx.rc = RequestList(ctx.g, f->overdue, f->kind); });
  ctx.examples[list] = "lethectl request list --overdue";
  auto* extend = request->add_subcommand(
      "extend", "move an open request's due date (GDPR Art. 12(3); capped by deadlines.max_extension)");
  extend->add_option("id", f->id, "request id")->required();
  extend->add_option("--by", f->by, "how much longer: <n>h, <n>d or <n>w")->required();
  extend->add_option("--reason", f->reason, "why (kept encrypted, shredded with the request); this or --reason-from is required");
  extend->add_option("--reason-from", f->reason_from, "FILE, or - for standard input: the reason");
  extend->callback([&ctx, f] {
    auto text = ReasonText(f->reason, f->reason_from);
    if (text.ok() && text->empty()) text = absl::InvalidArgumentError("give --reason TEXT or --reason-from FILE|-");
    ctx.rc = text.ok() ? RequestExtend(ctx.g, f->id, f->by, *text) : Fail("request extend", text.status());
  });
  ctx.examples[extend] =
      "lethectl request extend 3f2a9c0d1e2b4a5c6d7e8f9012345678 --by 14d --reason-from reason.txt";
  auto* add_id = request->add_subcommand(
      "add-identity", "give an open request an identity type a waiting domain is keyed by");
  add_id->add_option("id", f->id, "request id")->required();
  add_id->add_option("--identity", f->identities, "TYPE=VALUE, repeatable");
  add_id->add_option("--identities-from", f->identities_from, "FILE, or - for standard input: one TYPE=VALUE a line");
  add_id->callback([&ctx, f] { ctx.rc = RequestAddIdentity(ctx.g, f->id, f->identities, f->identities_from); });
  ctx.examples[add_id] =
      "echo user_id=73310042 | lethectl request add-identity 3f2a9c0d1e2b4a5c6d7e8f9012345678 --identities-from -";
  auto* cert = request->add_subcommand(
      "certificate", "an erasure certificate: the request's entries with inclusion proofs");
  cert->add_option("id", f->id, "request id");
  cert->add_option("--out", f->cert_out, "write the certificate (JSON) here");
  cert->add_option("--verify", f->cert_verify, "check a certificate file offline");
  cert->add_option("--public-key", f->cert_key, "lethed's public key (PEM)");
  cert->callback([&ctx, f] {
    if (!f->cert_verify.empty() && (!f->id.empty() || !f->cert_out.empty())) {
      ctx.rc = Fail("request certificate",
                    absl::InvalidArgumentError("--verify FILE checks a certificate offline: it takes no "
                                               "request id and no --out"));
    } else if (!f->cert_verify.empty()) {
      ctx.rc = RequestCertificateVerify(ctx.g, f->cert_verify, f->cert_key);
    } else if (f->id.empty()) {
      ctx.rc = Fail("request certificate", absl::InvalidArgumentError("give a request id or --verify FILE"));
    } else {
      ctx.rc = RequestCertificate(ctx.g, f->id, f->cert_out, f->cert_key);
    }
  });
  ctx.examples[cert] =
      "lethectl request certificate 3f2a9c0d1e2b4a5c6d7e8f9012345678 --out cert.json --public-key lethed.pub";
  auto* exp = request->add_subcommand(
      "export", "write a completed access request's package (then lethed destroys its copy), or verify one");
  exp->add_option("id", f->id, "request id");
  exp->add_option("--out", f->cert_out, "write the package here (a new file, mode 0600: it is personal data)");
  exp->add_option("--format", f->format, "json (one document) or csv-zip (one CSV per table, and the document)")
      ->capture_default_str();
  exp->add_option("--verify", f->cert_verify, "check a package file (either format) offline");
  exp->add_option("--public-key", f->cert_key, "lethed's public key (PEM)");
  exp->callback([&ctx, f] {
    if (!f->cert_verify.empty() && (!f->id.empty() || !f->cert_out.empty())) {
      ctx.rc = Fail("request export", absl::InvalidArgumentError("--verify FILE checks a package offline: it takes no "
                                                                 "request id and no --out"));
    } else if (!f->cert_verify.empty()) {
      ctx.rc = RequestExportVerify(ctx.g, f->cert_verify, f->cert_key);
    } else if (f->id.empty()) {
      ctx.rc = Fail("request export", absl::InvalidArgumentError("give a request id and --out FILE, or --verify FILE"));
    } else {
      ctx.rc = RequestExport(ctx.g, f->id, f->cert_out, f->format, f->cert_key);
    }
  });
  ctx.examples[exp] =
      "lethectl request export 3f2a9c0d1e2b4a5c6d7e8f9012345678 --out bob.json --public-key lethed.pub";
  auto* watch = request->add_subcommand("watch", "follow a request until it completes");
  watch->add_option("id", f->id, "request id")->required();
  watch->add_option("--timeout", f->timeout, "give up after this long")->capture_default_str();
  watch->callback([&ctx, f] {
    auto t = ParseTimeout(f->timeout);
    ctx.rc = t.ok() ? Watch(ctx.g, f->id, *t) : Fail("request watch", t.status());
  });
  ctx.examples[watch] = "lethectl request watch 3f2a9c0d1e2b4a5c6d7e8f9012345678 --timeout 10m";
}

}  // namespace lethe::cli
