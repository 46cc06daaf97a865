#!/usr/bin/env python3
"""bench/call_path.py on a scheduler trace written here, whose steps are known: two changes
and two empty calls, each followed by the next request, in `perf sched timehist -w`'s layout."""
import os
import re
import subprocess
import sys
import tempfile

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")


def wake(t, who, whom):
    return f"{t:15.6f} [0000]  {who:<30s}  awakened: {whom}\n"


def switch(t, who, sch_us, run_us):
    return f"{t:15.6f} [0001]  {who:<30s}  {0.5:9.3f}  {sch_us / 1e3:9.3f}  {run_us / 1e3:9.3f}\n"


def change(t):
    """One change from t: entry queued at +100 us, the sync thread runs 120-160 and 265-275
    (woken at 100 and 260), wakes the handler at 270, response at 400."""
    u = 1e-6
    return [
        wake(t, "change-client[10/1]", "grpcpp_sync_ser[20/1]"),
        wake(t + 100 * u, "grpcpp_sync_ser[20/1]", "ledger-sync[30/1]"),
        wake(t + 158 * u, "ledger-sync[30/1]", "kworker/1:0H-kb[26]"),
        switch(t + 160 * u, "ledger-sync[30/1]", 20, 40),
        wake(t + 260 * u, "swapper", "ledger-sync[30/1]"),
        wake(t + 270 * u, "ledger-sync[30/1]", "grpcpp_sync_ser[20/1]"),
        switch(t + 275 * u, "ledger-sync[30/1]", 5, 10),
        wake(t + 400 * u, "grpcpp_sync_ser[21/1]", "change-client[10/1]"),
    ]


def main():
    u = 1e-6
    lines = ["           time    cpu  task name                       wait time  sch delay   run time\n"]
    # Empty calls: the server answers in 80 us, the client asks again 40 us later.
    for t in (10.0, 10.000120):
        lines += [wake(t, "echo-client[11/1]", "grpcpp_sync_ser[20/1]"),
                  wake(t + 80 * u, "grpcpp_sync_ser[20/1]", "echo-client[11/1]")]
    lines.append(wake(10.000240, "echo-client[11/1]", "grpcpp_sync_ser[20/1]"))
    # Changes: each next request 50 us after the response.
    for t in (20.0, 20.000450):
        lines += change(t)
    lines.append(wake(20.000900, "change-client[10/1]", "grpcpp_sync_ser[20/1]"))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.writelines(lines)
        path = f.name
    try:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "call_path.py"), path],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(path)
    print(out)
    got = {}
    section = None
    for line in out.splitlines():
        if not line.startswith(" "):
            section = line.split(" (")[0]
            continue
        # A step's name, then its figures (median first; the mean where there is one).
        parts = line.split()
        first = len(parts)
        while first > 0 and re.fullmatch(r"[0-9.]+", parts[first - 1]):
            first -= 1
        got[(section, " ".join(parts[:first]))] = float(parts[first])
    want = {
        ("Echo.Call", "server: request -> response"): 80,
        ("Echo.Call", "client: response -> next request"): 40,
        ("Echo.Call", "whole call"): 120,
        ("Consent.Change", "handler: request -> entry queued"): 100,
        ("Consent.Change", "ledger-sync: woken -> handler woken"): 170,
        ("Consent.Change", "of which ledger-sync's CPU"): 45,
        ("Consent.Change", "of which its waits for a CPU"): 25,
        ("Consent.Change", "of which its sleep (the disk)"): 100,
        ("Consent.Change", "handler: durable -> response back"): 130,
        ("Consent.Change", "client: response -> next request"): 50,
        ("Consent.Change", "whole call"): 450,
        ("Echo.Call", "wake-ups per call"): 2,
        ("Echo.Call", "of which of gRPC server threads"): 1,
        ("Consent.Change", "wake-ups per call"): 6,
        ("Consent.Change", "of which of gRPC server threads"): 2,
    }
    failed = False
    for key, value in want.items():
        if key not in got or abs(got[key] - value) > 0.6:
            print(f"FAIL {key}: want {value}, got {got.get(key)}")
            failed = True
    if "Echo.Durable: no complete call in the trace" not in out:
        print("FAIL: a trace without durable calls should say so")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
