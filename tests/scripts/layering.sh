#!/usr/bin/env bash
# The folders and what each may include (docs/design.md, "Folders and their dependencies").
# Fails, naming the file and line, when a folder includes a project folder it may not, or
# when code outside controlplane/ and cli/ includes gRPC (grpcpp, grpc, *.grpc.pb.h) or the
# API messages (lethe/v1/api.pb.h).
#   tests/scripts/layering.sh [REPO_ROOT]
set -euo pipefail
ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
cd "$ROOT"

# folder -> the project folders it may include besides itself. The generated messages
# (lethe/v1/*.pb.h) count as proto/.
declare -A ALLOWED=(
  [base]=""
  [crypto]="base"
  [proto]="base crypto"
  [kafka]="base"
  [s3]="base crypto"
  [ledger]="base crypto proto"
  [policies]="base crypto"
  [schema]="base crypto policies"
  [audit]="base crypto proto ledger policies"
  [agents]="base crypto proto kafka s3 policies schema"
  [controlplane]="base crypto proto kafka ledger policies audit"
  [cli]="base crypto proto ledger policies schema audit"
)
# Folders that may speak gRPC.
GRPC_OK=" controlplane cli "
# Folders that may serve grpc.health.v1 alone: gRPC's own headers and library, never the API
# (its generated *.grpc.pb.h or lethe/v1/api.pb.h, nor lethe_api).
GRPC_HEALTH_OK=" agents "
PROJECT=" ${!ALLOWED[*]} "

bad=0
report() { echo "layering: $1" >&2; bad=1; }

for dir in "${!ALLOWED[@]}"; do
  [ -d "$dir" ] || { report "$dir/: folder missing"; continue; }
  allowed=" $dir ${ALLOWED[$dir]} "
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    file="${hit%%:*}"; rest="${hit#*:}"; line="${rest%%:*}"; text="${rest#*:}"
    inc="$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$text")"
    top="${inc%%/*}"
    # gRPC, and the API (whose generated header pulls gRPC's service types in).
    if [[ "$inc" == grpcpp/* || "$inc" == grpc/* || "$inc" == *.grpc.pb.h || "$inc" == lethe/v1/api.pb.h ]]; then
      if [[ "$GRPC_HEALTH_OK" == *" $dir "* && ( "$inc" == grpcpp/grpcpp.h || "$inc" == grpcpp/health_check_service_interface.h ) ]]; then
        continue
      fi
      if [[ "$GRPC_OK" != *" $dir "* && "$file" != proto/request_traits.h ]]; then
        report "$file:$line: $dir/ may not include $inc (gRPC and the API belong to controlplane/ and cli/)"
      fi
      continue
    fi
    [[ "$inc" == lethe/v1/* ]] && top=proto
    if [[ "$PROJECT" == *" $top "* && "$allowed" != *" $top "* ]]; then
      report "$file:$line: $dir/ may not include $inc (allowed: ${ALLOWED[$dir]:-nothing})"
    fi
  done < <(git grep -n -E '^[[:space:]]*#[[:space:]]*include' -- "$dir/*.h" "$dir/*.cc" || true)
done

# The same layering in the link graph: the libraries of the lower folders must not link
# the upper ones (the CMake target names of each folder).
declare -A TARGET_OF=([ledger]=lethe_ledger [policies]=lethe_policy [audit]=lethe_audit
  [kafka]=lethe_kafka [crypto]=lethe_crypto [base]=lethe_base [schema]=lethe_schema)
for dir in "${!TARGET_OF[@]}"; do
  allowed=" $dir ${ALLOWED[$dir]} "
  for other in "${!ALLOWED[@]}"; do
    [[ "$allowed" == *" $other "* ]] && continue
    for t in lethe_$other ${TARGET_OF[$other]:-}; do
      if grep -qE "target_link_libraries\([^)]*\b$t\b" "$dir/CMakeLists.txt"; then
        report "$dir/CMakeLists.txt: links $t, but $dir/ may not depend on $other/"
      fi
    done
  done
  if [[ "$GRPC_OK" != *" $dir "* ]] && grep -qE 'lethe_api' "$dir/CMakeLists.txt"; then
    report "$dir/CMakeLists.txt: links lethe_api"
  fi
  if [[ "$GRPC_OK" != *" $dir "* && "$GRPC_HEALTH_OK" != *" $dir "* ]] && grep -qE 'gRPC::' "$dir/CMakeLists.txt"; then
    report "$dir/CMakeLists.txt: links gRPC"
  fi
done

[ "$bad" = 0 ] && echo "layering: every include and link follows docs/design.md"
exit "$bad"
