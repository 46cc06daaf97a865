#!/usr/bin/env python3
"""Where one client's calls spend their time, from a scheduler trace of consent_bench.

With one client, calls do not overlap, so the wake-ups between threads mark each call's
steps. consent_bench names its client threads (echo-client, durable-client, change-client)
and lethed names its ledger's sync thread (ledger-sync). For each call this takes, from the
wake-ups in `perf sched timehist -w`:

  Echo.Call        request sent -> response back (the server), response -> next request (the
  Echo.Durable     client); the same for the call whose handler writes and fdatasyncs a record;
  Consent.Change   request sent -> ledger-sync woken (the handler, up to its entry queued),
                   ledger-sync woken -> it wakes the handler (the write and fdatasync: split
                   into its CPU, its waits for a CPU and its sleep on the disk), -> response
                   back (the handler after durability, and gRPC), -> next request (the client);

and prints the median and mean of each, in microseconds, and the median number of wake-ups
in a call (and of them, those of gRPC's server threads). Run (as root; `perf sched` needs the
tracefs mounted: `mount -t tracefs nodev /sys/kernel/tracing` where it is not):

  perf sched record -a -o /tmp/sched.data -- \
      build/bench/consent_bench --threads 1 --runs 1 --seconds 3
  perf sched timehist -w -i /tmp/sched.data > /tmp/sched.txt
  python3 bench/call_path.py /tmp/sched.txt
"""
import re
import statistics
import sys

# "  12020.500073 [0000]  grpcpp_sync_ser[617/561]   awakened: ledger-sync[598/561]"
WAKE = re.compile(r"^\s*(\d+\.\d+)\s+\[\d+\]\s+(.+?)\s+awakened: (.+?)\s*$")
# "  12020.500134 [0001]  ledger-sync[598/561]   0.645   0.021   0.039" (switch-out: the
# time it slept before, its wait for a CPU once woken, and how long it ran, in ms)
SWITCH = re.compile(r"^\s*(\d+\.\d+)\s+\[\d+\]\s+(.+?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s*$")


def name(task):
    """'ledger-sync[598/561]' -> 'ledger-sync'"""
    return re.sub(r"\[[0-9/]+\]$", "", task)


def parse(path):
    events = []  # (time, kind, who, whom or (sch_delay, run))
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = WAKE.match(line)
            if m:
                events.append((float(m.group(1)), "wake", m.group(2), m.group(3)))
                continue
            m = SWITCH.match(line)
            if m:
                events.append((float(m.group(1)), "run", m.group(2),
                               (float(m.group(4)) / 1e3, float(m.group(5)) / 1e3)))
    return events


def calls(events, client):
    """Splits the trace into the calls of the one thread named `client`: lists of events
    from its request to its next request."""
    out, cur, tids = [], None, set()
    for ev in events:
        t, kind, who, whom = ev
        if kind == "wake" and name(who) == client and name(whom) != client:
            tids.add(who)
            if cur is not None:
                out.append((cur, t))
            cur = [ev]
        elif cur is not None:
            cur.append(ev)
    if len(tids) > 1:
        sys.exit(f"call_path.py: {len(tids)} threads named {client}: run consent_bench with --threads 1")
    return out


def echo_steps(call, end, client):
    t0 = call[0][0]
    back = [t for t, kind, who, whom in call if kind == "wake" and name(whom) == client]
    if not back:
        return None
    return {"server: request -> response": back[0] - t0, "client: response -> next request": end - back[0],
            "whole call": end - t0}


def change_steps(call, end):
    t0 = call[0][0]
    t1 = t2 = t3 = None
    cpu = sch = 0.0
    last_run_seen = False
    for t, kind, who, whom in call:
        if kind == "wake" and t1 is None and name(whom) == "ledger-sync":
            t1 = t
        elif kind == "run" and t1 is not None and name(who) == "ledger-sync":
            if t2 is None:
                sch += whom[0]
                cpu += whom[1]
            elif not last_run_seen:
                # The run in which it woke the handler: the part of it before that.
                last_run_seen = True
                start = t - whom[1]
                if start >= t1:
                    sch += whom[0]
                    cpu += max(0.0, t2 - start)
        elif (kind == "wake" and t1 is not None and t2 is None and name(who) == "ledger-sync"
              and not name(whom).startswith("kworker")):
            t2 = t
        elif kind == "wake" and t2 is not None and t3 is None and name(whom) == "change-client":
            t3 = t
    if None in (t1, t2, t3):
        return None
    sync = t2 - t1
    return {
        "handler: request -> entry queued": t1 - t0,
        "ledger-sync: woken -> handler woken": sync,
        "  of which ledger-sync's CPU": cpu,
        "  of which its waits for a CPU": sch,
        "  of which its sleep (the disk)": max(0.0, sync - cpu - sch),
        "handler: durable -> response back": t3 - t2,
        "client: response -> next request": end - t3,
        "whole call": end - t0,
    }


def wakeups(call):
    """Wake-ups in a call, and how many of them woke one of gRPC's server threads."""
    woken = [whom for t, kind, who, whom in call if kind == "wake"]
    return len(woken), sum(1 for whom in woken if name(whom).startswith("grpcpp"))


def report(title, steps, wakes):
    steps = [s for s in steps if s is not None]
    if not steps:
        print(f"{title}: no complete call in the trace")
        return
    print(f"{title} ({len(steps)} calls)          median      mean  (us)")
    for key in steps[0]:
        values = [s[key] for s in steps]
        print(f"  {key:40s} {statistics.median(values) * 1e6:9.1f} {statistics.mean(values) * 1e6:9.1f}")
    print(f"  {'wake-ups per call':40s} {statistics.median([w[0] for w in wakes]):9.1f}")
    print(f"  {'  of which of gRPC server threads':40s} {statistics.median([w[1] for w in wakes]):9.1f}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    events = parse(sys.argv[1])
    for title, client, steps_of in (
            ("Echo.Call", "echo-client", lambda c, end: echo_steps(c, end, "echo-client")),
            ("Echo.Durable", "durable-client", lambda c, end: echo_steps(c, end, "durable-client")),
            ("Consent.Change", "change-client", change_steps)):
        found = calls(events, client)
        report(title, [steps_of(c, end) for c, end in found], [wakeups(c) for c, end in found])


if __name__ == "__main__":
    main()
