"""Where the machine's CPU goes per request, by process, for the ping and one path under load.

    .venv/bin/python bench/cpu_split.py refresh [--seconds 4] [--phases 3] [--clients 4]

What the suite's "per CPU-second of the workers" leaves out: on one machine that also runs
PostgreSQL, Redis and the load, a path's requests per second against the ping's depend on
all of them. The ping and the path are driven alternately, as in the suite (gunicorn as
deployed, the production settings, the load from other processes), and each phase prints
the CPU time per request of the gunicorn workers, of PostgreSQL's processes (backends and
the WAL writer apart), of Redis, of the load processes and of anything else that used 5 us
or more, read from /proc around the phase; and how busy the machine was (its idle time
includes the phase's start and end: the load processes connecting, and their results).
Used for docs/performance.md (the fifth and sixth passes); the targets are judged by `make
bench`.
"""

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import harness
import suite


def process_cpu() -> dict[int, tuple[str, float]]:
    """Every process's (kind, CPU seconds); PostgreSQL's by role (its backends together)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            kind = stat[stat.index("(") + 1 : stat.rindex(")")]
            if kind == "postgres":  # "postgres: 15/main: checkpointer", or "...: <user> <database> <client> <state>"
                title = (entry / "cmdline").read_text().replace("\0", " ").split(":")
                role = title[2].split() if len(title) > 2 else ["postmaster"]
                kind = "postgres backends" if len(role) >= 3 else "postgres " + " ".join(role)
        except (OSError, ValueError):
            continue  # ended meanwhile
        found[int(entry.name)] = (kind, harness.stat_cpu_seconds(stat))
    return found


def machine_cpu() -> tuple[float, float]:
    """(all, idle) CPU seconds of the machine, idle counting I/O wait."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) / harness.TICKS, (values[3] + values[4]) / harness.TICKS


def load_cpu() -> float:
    """The CPU time of this process's ended children: the load processes."""
    times = os.times()
    return times.children_user + times.children_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", choices=("whoami", "check", "introspect", "refresh", "client_credentials"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--phases", type=int, default=3, help="pairs of phases (ping, then the path)")
    parser.add_argument("--clients", type=int, default=2 * (os.cpu_count() or 2))
    args = parser.parse_args()
    with ExitStack() as stack:
        env, port, seeded = stack.enter_context(suite.seeded_main_tenant())
        master = stack.enter_context(harness.gunicorn(env, port, os.cpu_count() or 2, host=suite.host_of(suite.MAIN)))
        workers = harness.worker_pids(master)
        token = suite.service_token(port, suite.MAIN, seeded["client_id"], seeded["client_secret"])
        workloads = suite.main_workloads(seeded, token, login_count=100)
        tokens = list(seeded["refresh_tokens"])
        for name in ["ping", args.path] * args.phases:
            workload = getattr(workloads, name)
            before, machine_before, load_before = process_cpu(), machine_cpu(), load_cpu()
            chained = tokens if workload.chain else None
            phase = harness.throughput(port, workload, args.seconds, args.clients, workers=workers, tokens=chained)
            tokens = phase.tokens if workload.chain else tokens
            after, machine_after, load_after = process_cpu(), machine_cpu(), load_cpu()
            used = {"load": load_after - load_before}
            for pid, (kind, seconds) in after.items():
                group = "workers" if pid in workers else kind
                used[group] = used.get(group, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
            all_seconds = machine_after[0] - machine_before[0]
            busy = all_seconds - (machine_after[1] - machine_before[1])
            shares = ", ".join(
                f"{group} {seconds / phase.count * 1e6:.0f}"
                for group, seconds in sorted(used.items(), key=lambda item: -item[1])
                if seconds / phase.count * 1e6 >= 5
            )
            print(
                f"{name}: {phase.rps:,.0f} req/s, machine busy {busy / all_seconds:.0%}; "
                f"CPU per request (us): {shares}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
