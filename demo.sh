#!/usr/bin/env bash
# The Lethe demo: the whole embedded stack on one machine, end to end.
#
# Installs the Debian packages it needs, builds, then: starts a throwaway PostgreSQL holding
# two domains (assessments keyed by user_id, growth keyed by email), lethed with its embedded
# Kafka, and one lethe-agent per domain; prints lethed's health and the services reflection
# lists; onboards a third domain, support, with `lethectl domain init` (the proposed section,
# the agent's keys and the policy with it, activated; a schema change reported as drift);
# plants rows for four people; answers Bob's access
# request (his package exported once and verified offline); gives growth two S3 buckets on a
# local S3 API server (s3rver) and lists the sinks of its topic through a policy change;
# erases Alice with `lethectl request erase --wait` (delete, anonymize, retain, tombstone, her
# S3 objects and JSON lines; DONE_WITH_GAPS, as a warehouse sink keeps a copy); records Carol's
# consent and her withdrawal, which erases her from the marketing domain only; erases Dan
# knowing only his email (one domain waits for an identity), extends his deadline and adds
# the missing identity; shows the receipts, the rows left, the policy and its history, and
# verifies the ledger offline (with lethectl and with the independent Python verifier of
# tests/verifier) and through the server. Everything lives in a temp dir removed
# at the end (LETHE_DEMO_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)

# LETHE_DEMO_SKIP_BUILD=1: use the build dir as it is (the demo ctest, run from a build).
if [ "${LETHE_DEMO_SKIP_BUILD:-0}" != 1 ]; then tests/scripts/build.sh; fi
BIN=${LETHE_BUILD_DIR:-$ROOT/build}
LETHECTL=$BIN/cli/lethectl

WORK=$(mktemp -d /tmp/lethe-demo-XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tests/scripts/pg.sh stop "$WORK/pg" >/dev/null 2>&1 || true
  if [ "${LETHE_DEMO_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for_file() {
  for _ in $(seq 1 300); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "demo: $1 did not appear; logs in $WORK" >&2
  return 1
}

step "PostgreSQL: a throwaway cluster with two domain databases"
eval "$(tests/scripts/pg.sh start "$WORK/pg")"
export PGHOST PGPORT PGUSER=postgres
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "CREATE DATABASE assessments" -c "CREATE DATABASE growth"
psql -d assessments -f policies/sample-assessments.sql
psql -d growth -f policies/sample-growth.sql
show_rows() {
  psql -d assessments -c "SELECT 'assessments.responses' AS tbl, user_id AS subject, count(*) FROM assessments.responses GROUP BY 2
                         UNION ALL SELECT 'assessments.scores', user_id, count(*) FROM assessments.scores GROUP BY 2
                         UNION ALL SELECT 'assessments.events', left(user_id, 12) || coalesce(' ip=' || ip, ' ip=NULL') || ' ' || city, count(*)
                           FROM assessments.events GROUP BY 2 ORDER BY 1, 2"
  psql -d growth -c "SELECT 'growth.contacts' AS tbl, email AS subject, count(*) FROM growth.contacts GROUP BY 2
                    UNION ALL SELECT 'growth.campaign_events', email, count(*) FROM growth.campaign_events GROUP BY 2
                    UNION ALL SELECT 'growth.invoices', email, count(*) FROM growth.invoices GROUP BY 2 ORDER BY 1, 2"
  if [ -n "${SUPPORT_ONBOARDED:-}" ]; then
    psql -d support -c "SELECT 'support.tickets' AS tbl, email AS subject, count(*) FROM support.tickets GROUP BY 2
                       UNION ALL SELECT 'support.messages', email, count(*) FROM support.messages GROUP BY 2 ORDER BY 1, 2"
  fi
}
echo "Alice is user_id u-1001 / alice@example.com; Bob is u-2002 / bob@example.com;"
echo "Carol is u-3003 / carol@example.com; Dan is u-4004 / dan@example.com."
show_rows

step "Keys: lethed signs commands and checkpoints; each agent signs its receipts"
mkdir -p "$WORK/keys"
$LETHECTL keys generate --out "$WORK/keys/lethed"
$LETHECTL keys generate --out "$WORK/keys/assessments"
$LETHECTL keys generate --out "$WORK/keys/growth"

step "Certificates: a CA, lethed's server certificate, one client certificate per role"
# The role lives in the certificate: spiffe://demo.lethe.local/lethe/ROLE/NAME (a URI SAN).
$LETHECTL certs create-ca --certs-dir "$WORK/certs" --trust-domain demo.lethe.local
$LETHECTL certs create-server --certs-dir "$WORK/certs" --host 127.0.0.1 --host localhost
for who in "admin root" "operator olga" "auditor audrey"; do
  set -- $who
  $LETHECTL certs create-client --certs-dir "$WORK/certs" --role "$1" --name "$2"
  # Each person gets a directory of their own: the CA certificate and their key pair.
  mkdir -p "$WORK/$1" && cp "$WORK/certs/ca.crt" "$WORK/$1/" && mv "$WORK/certs/client.$2."* "$WORK/$1/"
done
ADMIN=("$LETHECTL" --certs-dir "$WORK/admin")
OPERATOR=("$LETHECTL" --certs-dir "$WORK/operator")
AUDITOR=("$LETHECTL" --certs-dir "$WORK/auditor")

step "lethed with embedded Kafka (librdkafka's mock cluster, the real protocol on loopback)"
DATA=$WORK/lethed
mkdir -p "$DATA"
"$BIN/controlplane/lethed" --listen 127.0.0.1:0 --data-dir "$DATA" --policy policies/sample.yaml \
  --signing-key "$WORK/keys/lethed.key" --certs-dir "$WORK/certs" --embedded-kafka >"$WORK/lethed.log" 2>&1 &
PIDS+=($!)
wait_for_file "$DATA/lethed.addr"
export LETHE_ADDR
LETHE_ADDR=$(cat "$DATA/lethed.addr")
echo "lethed on $LETHE_ADDR; Kafka bootstrap $(cat "$DATA/kafka.bootstrap")"

step "Health (grpc.health.v1, what a kubelet probes) and the services server reflection lists"
"${AUDITOR[@]}" health

step "Enroll the agents' receipt keys in the ledger"
"${ADMIN[@]}" agent enroll --domain assessments --public-key "$WORK/keys/assessments.pub"
"${ADMIN[@]}" agent enroll --domain growth --public-key "$WORK/keys/growth.pub"
"${AUDITOR[@]}" agent list

step "Roles are checked before any handler runs: an auditor cannot erase, an operator cannot enroll a key"
{ echo email=mallory@example.com | "${AUDITOR[@]}" request erase --identities-from - || true; } 2>&1 | sed 's/^/  /'
{ "${OPERATOR[@]}" agent enroll --domain growth --public-key "$WORK/keys/growth.pub" || true; } 2>&1 | sed 's/^/  /'

step "Start one lethe-agent per domain"
for d in assessments growth; do
  "$BIN/agents/lethe-agent" --domain "$d" --postgres "host=$PGHOST port=$PGPORT dbname=$d user=postgres" \
    --policy policies/sample.yaml --key "$WORK/keys/$d.key" --control-plane-key "$WORK/keys/lethed.pub" \
    --kafka-bootstrap "@$DATA/kafka.bootstrap" --kafka-fetch-wait 10ms --vacuum-poll 200ms --vacuum-min-interval 0s >"$WORK/agent-$d.log" 2>&1 &
  PIDS+=($!)
  [ "$d" = growth ] && GROWTH_AGENT=$!
done

step "Onboard a third domain with one command: lethectl domain init reads support's schema"
# The support team's database: tickets, and the messages of each ticket (a foreign key).
psql -d postgres -c "CREATE DATABASE support"
psql -d support -c "CREATE SCHEMA support" \
  -c "CREATE TABLE support.tickets (id serial PRIMARY KEY, email text NOT NULL, subject text NOT NULL)" \
  -c "CREATE TABLE support.messages (id serial PRIMARY KEY, ticket_id int NOT NULL REFERENCES support.tickets (id),
        email text NOT NULL, body text NOT NULL)" \
  -c "INSERT INTO support.tickets (email, subject) VALUES ('alice@example.com', 'Delete my account'),
        ('bob@example.com', 'What do you hold about me?'), ('dan@example.com', 'Unsubscribe')" \
  -c "INSERT INTO support.messages (ticket_id, email, body) SELECT id, email, 'Hello, ' || subject FROM support.tickets"
SUPPORT_DSN="host=$PGHOST port=$PGPORT dbname=support user=postgres"
# A proposed section (children first), the agent's keys, the sidecar's kustomize overlay, and
# the sample policy with the section added: no section written by hand.
$LETHECTL domain init support --postgres "$SUPPORT_DSN" --policy policies/sample.yaml \
  --control-plane-key "$WORK/keys/lethed.pub" --out "$WORK/onboard/support"
echo "-- the proposed section ($WORK/onboard/support/policy-section.yaml):"
grep -v '^#' "$WORK/onboard/support/policy-section.yaml" | sed 's/^/  /'
echo "-- the printed lethectl steps, run here (the kubectl ones are for a cluster: docs/kubernetes.md):"
"${ADMIN[@]}" policy activate "$WORK/onboard/support/policy.yaml"
"${ADMIN[@]}" agent enroll --domain support --public-key "$WORK/onboard/support/agent.pub"
"$BIN/agents/lethe-agent" --domain support --postgres "$SUPPORT_DSN" --policy "$WORK/onboard/support/policy.yaml" \
  --key "$WORK/onboard/support/agent.key" --control-plane-key "$WORK/keys/lethed.pub" \
  --kafka-bootstrap "@$DATA/kafka.bootstrap" --kafka-fetch-wait 10ms --vacuum-poll 200ms --vacuum-min-interval 0s >"$WORK/agent-support.log" 2>&1 &
PIDS+=($!)
SUPPORT_ONBOARDED=1
echo "-- activating the same file again changes nothing (a deploy pipeline may run it every time):"
"${ADMIN[@]}" policy activate "$WORK/onboard/support/policy.yaml"
echo "-- a migration adds a table with an e-mail column: the same command, with --check, reports drift"
psql -d support -c "CREATE TABLE support.callbacks (id serial PRIMARY KEY, email text NOT NULL, phone text)"
{ $LETHECTL domain init support --postgres "$SUPPORT_DSN" --policy "$WORK/onboard/support/policy.yaml" --check ||
  echo "(exit $?: drift found)"; } 2>&1 | sed 's/^/  /'
psql -d support -c "DROP TABLE support.callbacks"

step "An auditor keeps today's signed checkpoint, to check later that history was not rewritten"
"${AUDITOR[@]}" ledger checkpoint --fresh --public-key "$WORK/keys/lethed.pub" --out "$WORK/kept.checkpoint"
echo "verifier key (for standard transparency-log tools): $("${AUDITOR[@]}" ledger verifier-key)"

step "Bob asks what the mesh holds about him (GDPR Art. 15): every domain gathers it, read-only"
printf 'email=bob@example.com\nuser_id=u-2002\n' |
  "${OPERATOR[@]}" request access --identities-from - \
    --reason "Art. 15 request via support ticket 4712" --wait --timeout 2m
BOB=$("${OPERATOR[@]}" -o json request list --kind access | grep -o '"request_id": "[0-9a-f]*"' | tail -n 1 | cut -d'"' -f4)
"${OPERATOR[@]}" request get "$BOB"

step "His package: verified, written once (mode 0600), then lethed destroys its copy and the request key"
"${OPERATOR[@]}" request export "$BOB" --out "$WORK/bob-package.json" --public-key "$WORK/keys/lethed.pub"
echo "-- what he receives: every table's rows (one JSON document; --format csv-zip gives a CSV per table):"
python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))
for d in p["domains"]:
    for t in d["part"]["tables"]:
        print("  %s: %s" % (t["table"], json.dumps(t["rows"])[:150]))' "$WORK/bob-package.json"
echo "-- anyone with lethed's public key checks it offline, against the receipts in the signed ledger:"
$LETHECTL request export --verify "$WORK/bob-package.json" --public-key "$WORK/keys/lethed.pub"
echo "-- a second export is refused: the package left once"
{ "${OPERATOR[@]}" request export "$BOB" --out "$WORK/bob-again.json" || true; } 2>&1 | sed 's/^/  /'

step "growth also keeps S3 buckets (per-user exports, events as JSON lines) and lists its topic's sinks"
# s3rver from npm (tests/scripts/s3rver.sh installed it), on a port the kernel picks.
NODE_OPTIONS=--openssl-legacy-provider node "$BIN/s3rver/node_modules/s3rver/bin/s3rver.js" -d "$WORK/s3" \
  -a 127.0.0.1 -p 0 --silent --configure-bucket growth-exports --configure-bucket growth-events >"$WORK/s3rver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do grep -q 'listening on' "$WORK/s3rver.log" && break; sleep 0.1; done
S3=$(grep -o 'http://127.0.0.1:[0-9]*\|127\.0\.0\.1:[0-9]*' "$WORK/s3rver.log" | head -n 1)
S3=http://${S3#http://}
# Any S3 client works against it; here curl, signing with SigV4 as the agent does.
s3() { curl -sS --fail-with-body --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }
s3 -X PUT --data-binary '{"name":"Alice","plan":"pro"}' "$S3/growth-exports/exports/alice%40example.com/profile.json"
s3 -X PUT --data-binary 'email,clicks' "$S3/growth-exports/exports/alice%40example.com/2026-11-clicks.csv"
s3 -X PUT --data-binary '{"name":"Bob"}' "$S3/growth-exports/exports/bob%40example.com/profile.json"
printf '%s\n' '{"email":"bob@example.com","event":"open"}' '{"email":"Alice@Example.com","event":"click"}' \
  '{"email":"carol@example.com","event":"open"}' '{"email":"alice@example.com","event":"unsubscribe"}' >"$WORK/events.jsonl"
s3 -X PUT --data-binary @"$WORK/events.jsonl" "$S3/growth-events/events/2026-12.jsonl"
show_s3() {
  echo "-- growth-exports:"; s3 "$S3/growth-exports?list-type=2" | grep -o '<Key>[^<]*</Key>' | sed 's/^/  /'
  echo "-- growth-events/events/2026-12.jsonl:"; s3 "$S3/growth-events/events/2026-12.jsonl" | sed 's/^/  /'
}
show_s3
# The policy gains growth's s3 section (rolled out like any change: deploy the file to the
# agent, activate it); its credentials come from the AWS environment, never from the policy.
python3 - "$WORK/onboard/support/policy.yaml" "$WORK/policy-s3.yaml" "$S3" <<'PY'
import sys
text = open(sys.argv[1]).read()
anchor = 'key: "{email}"'
at = text.index(anchor, text.index("topic: mesh.growth.contacts"))
at = text.index("\n", at) + 1
section = f"""          sinks:                           # where Kafka Connect copies the topic
            - {{name: contacts-search, kind: elasticsearch, deletes_on_tombstone: true}}
            - {{name: contacts-archive, kind: s3, deletes_on_tombstone: false,
               covered_by: {{s3_bucket: growth-exports}}}}   # erased by the S3 purge below
            - {{name: contacts-warehouse, kind: jdbc, deletes_on_tombstone: false}}   # a gap
    s3:
      endpoint: {sys.argv[3]}
      region: us-east-1
      buckets:
        - bucket: growth-exports
          objects: "exports/{{email}}/"     # every object under the person's prefix
          action: delete
        - bucket: growth-events
          jsonl: "events/"                 # JSON-lines objects: the person's lines go
          field: email
          identity: email
          action: delete
"""
open(sys.argv[2], "w").write(text[:at] + section + text[at:])
PY
sed -n '/^          sinks:/,/action: delete$/p' "$WORK/policy-s3.yaml" | head -n 14 | sed 's/^/  /'
"${ADMIN[@]}" policy activate "$WORK/policy-s3.yaml"
# The old agent must be gone before a command under the new policy reaches it (it would
# refuse it as policy drift, and --wait would stop for an operator).
kill "$GROWTH_AGENT" && wait "$GROWTH_AGENT" 2>/dev/null || true
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$BIN/agents/lethe-agent" --domain growth \
  --postgres "host=$PGHOST port=$PGPORT dbname=growth user=postgres" --policy "$WORK/policy-s3.yaml" \
  --key "$WORK/keys/growth.key" --control-plane-key "$WORK/keys/lethed.pub" \
  --kafka-bootstrap "@$DATA/kafka.bootstrap" --kafka-fetch-wait 10ms --vacuum-poll 200ms --vacuum-min-interval 0s >>"$WORK/agent-growth.log" 2>&1 &
PIDS+=($!)

step "Erase Alice from every domain that holds her (identities on standard input, never on argv)"
# Spelled as she wrote to support: the policy normalizes email (trim, lowercase), so this is
# the alice@example.com the domains hold.
# The warehouse sink keeps its copy, so the request ends DONE_WITH_GAPS: exit code 8.
rc=0
printf 'email= Alice@Example.com\nuser_id=u-1001\n' |
  "${OPERATOR[@]}" request erase --identities-from - \
    --reason "Art. 17 request via support ticket 4711" --wait --timeout 2m || rc=$?
[ "$rc" -eq 8 ] || { echo "demo: expected DONE_WITH_GAPS (exit 8), got exit $rc" >&2; exit 1; }
ID=$("${OPERATOR[@]}" -o json request list | grep -o '"request_id": "[0-9a-f]*"' | tail -n 1 | cut -d'"' -f4)

step "The request, per domain: everything Lethe reaches is erased, and the warehouse copy is named as the gap"
"${OPERATOR[@]}" request get "$ID"

step "Two times per domain: logically erased, and physically gone by (each agent's PHYSICALLY_PURGED receipt)"
# assessments and growth vacuum their tables themselves (vacuum: after_purge, full_after_purge
# in the policy); support's onboarded section has no vacuum key, so its agent waits for a
# vacuum it can see: a DBA's VACUUM here, autovacuum in production.
echo "-- support waits for a vacuum; one comes:"
psql -d support -qc "VACUUM"
for _ in $(seq 1 300); do
  [ "$("${OPERATOR[@]}" -o json request get "$ID" | grep -c '"physical_receipt_entry": [1-9]')" -ge 3 ] && break
  sleep 0.2
done
"${OPERATOR[@]}" request get "$ID" | grep -e '^request' -e 'physical' -e 'PHYSICALLY_PURGED' -e '^  [a-z]' | cut -c1-160
"${OPERATOR[@]}" -o json request get "$ID" | grep '"physical_state": "PHYSICAL_UNBOUNDED"' >/dev/null ||
  { echo "demo: expected the request to be DONE_WITH_GAPS for physical purge (growth's topic has no bound)" >&2; exit 1; }

step "Rows left: Alice deleted, her analytics anonymized, her invoices retained for tax law; Bob untouched"
show_rows
echo "-- and in S3: her exports deleted, her two event lines (both spellings) removed, everyone else's kept"
show_s3

step "The active policy and its history: the sample policy from lethed's --policy, then support's onboarding"
"${AUDITOR[@]}" policy show

step "Consent: Carol opts in to marketing at signup, then unsubscribes"
echo email=carol@example.com > "$WORK/carol.ids"
"${OPERATOR[@]}" consent grant --identities-from "$WORK/carol.ids" --purpose marketing --source signup-form-v3
"${OPERATOR[@]}" consent withdraw --identities-from "$WORK/carol.ids" --purpose marketing --source unsubscribe-link
CAROL=$("${OPERATOR[@]}" -o json consent show --identities-from "$WORK/carol.ids" |
  grep -o '"erasure_request_id": "[0-9a-f]*"' | tail -n 1 | cut -d'"' -f4)
"${OPERATOR[@]}" request watch "$CAROL" --timeout 2m >/dev/null || [ $? -eq 8 ]
echo "-- marketing is erase_on_withdrawal and processed by growth only: the erasure is scoped to growth"
"${OPERATOR[@]}" request get "$CAROL"
echo "-- Carol's consent, per purpose and over time (the ledger and this view hold only her token):"
"${OPERATOR[@]}" consent show --identities-from "$WORK/carol.ids"
echo "-- every subject's current marketing consent:"
"${OPERATOR[@]}" consent list --purpose marketing

step "The current consent on the compacted topic lethe.consent, keyed by identity type, token and purpose"
if command -v kcat >/dev/null 2>&1; then
  kcat -C -b "$(cat "$DATA/kafka.bootstrap")" -t lethe.consent -e -q \
    -f 'offset %o key %k (%S bytes: a ConsentState signed by lethed)\n' 2>/dev/null || true
fi

step "Dan asks to be erased, but support only has his email: assessments is keyed by user_id"
# The id is the first line; the others show each domain's state and what assessments needs.
echo email=dan@example.com |
  "${OPERATOR[@]}" request erase --identities-from - --reason "Art. 17 request by e-mail" | tee "$WORK/dan.txt"
DAN=$(head -n 1 "$WORK/dan.txt")
"${OPERATOR[@]}" request extend "$DAN" --by 14d --reason "identity verification: user id requested from the subject"
# grep reads to the end (no -q): under pipefail an early exit would fail lethectl with SIGPIPE.
until "${OPERATOR[@]}" -o json request get "$DAN" | grep '"state": "DONE"' >/dev/null; do sleep 0.2; done
"${OPERATOR[@]}" request get "$DAN"
echo "-- overdue requests (due dates are checked against lethed's clock):"
"${OPERATOR[@]}" request list --overdue
echo "-- the subject confirmed his user id; the waiting domain gets its command:"
echo user_id=u-4004 | "${OPERATOR[@]}" request add-identity "$DAN" --identities-from - >/dev/null
"${OPERATOR[@]}" request watch "$DAN" --timeout 2m >/dev/null || [ $? -eq 8 ]
"${OPERATOR[@]}" request get "$DAN"
show_rows

step "Audit: verify the ledger offline, from the files and lethed's public key alone"
$LETHECTL ledger verify --dir "$DATA" --public-key "$WORK/keys/lethed.pub"

step "Audit: an independent verifier, written from ledger/FORMAT.md alone (Python), agrees"
"${LETHE_PYTHON3:-/usr/bin/python3}" tests/verifier/lethe_verify.py --dir "$DATA" --public-key "$WORK/keys/lethed.pub"

step "Audit: verify through the server, pinning the same key"
"${AUDITOR[@]}" ledger verify --public-key "$WORK/keys/lethed.pub"

step "Audit: prove the log still extends the checkpoint kept before the erasure"
"${AUDITOR[@]}" ledger verify --since "$WORK/kept.checkpoint" --public-key "$WORK/keys/lethed.pub"

step "The erasure certificate a privacy team hands to Alice or a regulator"
"${AUDITOR[@]}" request certificate "$ID" --out "$WORK/certificate.json" --public-key "$WORK/keys/lethed.pub"
echo "-- checked offline, with lethed's public key alone:"
$LETHECTL request certificate --verify "$WORK/certificate.json" --public-key "$WORK/keys/lethed.pub" | tail -n 1

step "An inclusion proof of the completion entry (C2SP tlog-proof)"
DONE_ENTRY=$("${OPERATOR[@]}" -o json request get "$ID" | grep -o '"completed_entry": [0-9]*' | grep -o '[0-9]*$')
"${AUDITOR[@]}" ledger proof --entry "$DONE_ENTRY" --public-key "$WORK/keys/lethed.pub"

step "Export the log as a static C2SP tlog-tiles tree and verify the copy offline"
"${AUDITOR[@]}" ledger export --out "$WORK/export" --public-key "$WORK/keys/lethed.pub"
$LETHECTL ledger verify --bundle "$WORK/export" --public-key "$WORK/keys/lethed.pub"

step "The compacted data-product topic now ends in a tombstone for Alice (kcat reads it like any Kafka)"
if command -v kcat >/dev/null 2>&1; then
  kcat -C -b "$(cat "$DATA/kafka.bootstrap")" -t mesh.growth.contacts -e -q -Z \
    -f 'topic %t partition %p offset %o key %k value %S bytes (-1 = null: a tombstone)\n' 2>/dev/null || true
fi

step "Privacy: the data dir holds no trace of the erased people's identifiers"
if grep -rqs -e 'alice@example.com' -e 'u-1001' -e 'carol@example.com' -e 'dan@example.com' -e 'u-4004' \
  "$DATA" "$WORK/export" "$WORK/certificate.json" || grep -rqs -e 'bob@example.com' -e 'u-2002' "$DATA"; then
  echo "FOUND an erased person's identifiers under $DATA or in the export" >&2
  exit 1
fi
echo "grep -r for the erased people's e-mails and user ids in the data dir, the export and the certificate: nothing found"
echo "(nor Bob's in the data dir: his exported package was kept under its request key, destroyed on export)"
echo "(the ledger holds HMAC tokens and AES-GCM ciphertext; the request key was destroyed on completion)"
if command -v kcat >/dev/null 2>&1; then
  # Commands carry the identities sealed to each agent's key; receipts and consent states none.
  for t in lethe.commands.assessments lethe.commands.growth lethe.commands.support lethe.receipts lethe.consent; do
    kcat -C -b "$(cat "$DATA/kafka.bootstrap")" -t "$t" -e -q -f '%k %s\n' 2>/dev/null
  done >"$WORK/topics.bin"
  if grep -aqs -e 'alice@example.com' -e 'u-1001' -e 'carol@example.com' -e 'dan@example.com' -e 'u-4004' \
    -e 'bob@example.com' "$WORK/topics.bin"; then
    echo "FOUND an identifier in clear on a lethe.* topic" >&2
    exit 1
  fi
  echo "kcat dump of every lethe.* topic ($(wc -c <"$WORK/topics.bin") bytes): no identifier in clear"
fi

step "The latest signed checkpoint (C2SP tlog-checkpoint)"
cat "$DATA/ledger/checkpoint"
echo
echo "demo complete."
