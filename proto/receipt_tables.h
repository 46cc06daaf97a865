// What a receipt's table results say about the tables' files, shared by the agent that
// writes receipts and the rules that read them.
#pragma once

#include "lethe/v1/messages.pb.h"

namespace lethe::proto {

// A table a purge left dead tuples in: it deleted or rewrote (anonymize) rows of it. Its
// PHYSICALLY_PURGED receipt must report its vacuum (ledger/FORMAT.md, tables to vacuum).
inline bool LeftDeadTuples(const v1::TableResult& t) {
  return (t.action() == "delete" || t.action() == "anonymize") && t.rows_affected() > 0;
}

}  // namespace lethe::proto
