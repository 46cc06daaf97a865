// S3Eraser: carries out a domain's S3 section (policies::S3Store) for one erasure command,
// through an s3::Client:
//   objects, delete: every object under each of the subject's key prefixes is deleted, with
//                    every version and delete marker when the bucket keeps versions;
//   jsonl, delete:   every JSON-lines object under the prefix that holds a line whose field
//                    is one of the subject's values is rewritten without those lines, by a
//                    conditional put on the ETag it read (a concurrent writer makes the put
//                    fail with 412: the object is read again and the rewrite retried); in a
//                    versioned bucket, older versions holding such lines are deleted;
//   retain:          nothing is touched; the objects or lines are counted as withheld.
// Then everything is listed (and read) again: the receipt's objects_remaining and
// lines_remaining, which must be 0.
//
// S3 has no transactions. Every bucket is checked first (it exists; no jsonl object is over
// the size limit) so that a command that cannot be carried out fails before anything is
// deleted; after that, a transient failure leaves part of the subject erased and the command
// is retried, which finishes the job (each step is idempotent). Called by PostgresPurger
// after the tables and tombstones, before it commits.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agents/command_verifier.h"
#include "base/clock.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "s3/client.h"

namespace lethe::agents {

// The S3 part of one erasure: a result per bucket entry, or why the command cannot be carried
// out (`failure`, answered FAILED; nothing was deleted).
struct ObjectErasure {
  std::vector<v1::S3Result> buckets;
  std::string failure;
};

struct S3EraserOptions {
  size_t max_object_bytes = 64 * 1024 * 1024;  // a jsonl object larger than this fails the command
  int conflict_retries = 5;                     // conditional puts refused in a row before retrying later
  const Clock* clock = &Clock::Real();          // stamps S3Result.physically_gone_by_unix_ms
};

// Thread safety: not thread-safe (one client); one agent loop calls Erase.
class S3Eraser {
 public:
  S3Eraser(policies::S3Store store, std::unique_ptr<s3::Client> client, S3EraserOptions options = {});
  // kUnavailable (or another error) when the store failed part way: retry the command.
  absl::StatusOr<ObjectErasure> Erase(const OpenedIdentities& ids);

 private:
  absl::Status Objects(const policies::S3Bucket& b, bool versioned, const std::vector<std::string>& prefixes,
                       v1::S3Result& r);
  // `listed`: the objects under the entry's prefix, as Erase listed them for its checks.
  absl::Status Jsonl(const policies::S3Bucket& b, bool versioned, const std::vector<std::string>& values,
                     const std::vector<s3::ObjectEntry>& listed, v1::S3Result& r);

  const policies::S3Store store_;
  const std::unique_ptr<s3::Client> client_;
  const S3EraserOptions options_;
};

// How one JSON-lines object reads against the subject: `kept` is the object without the
// subject's lines (line breaks kept as they were). Exposed for tests and the fuzzer.
struct JsonlScan {
  std::string kept;
  int64_t matched = 0;     // lines whose field holds one of the values
  int64_t near_match = 0;  // lines whose field equals one only after trimming and lower-casing
  int64_t unreadable = 0;  // non-blank lines that are not a JSON object
};
// `values` are the subject's values of the bucket's identity type; `match` as the policy says.
// A string field is compared as text; an integer field by its decimal form.
JsonlScan ScanJsonl(std::string_view object, const std::string& field, const std::vector<std::string>& values,
                    policies::Match match);

}  // namespace lethe::agents
