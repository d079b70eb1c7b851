"""Shared plumbing for the benchmarks: databases, environments, processes, /proc readings, figures and verdicts.

Every bench module is runnable alone (``uv run python -m bench.<name>``) and also through ``bench/run``, which
runs them one after the other in fresh processes and merges what they report into ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# Each bench's database is ``<prefix>_<bench>``: set BENCH_DB_PREFIX to keep parallel runs on one server apart.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench_connector")


def db_name(bench: str) -> str:
    return f"{DB_PREFIX}_{bench}"


CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ------------------------------------------------------------------------------------------------------ figures


@dataclass
class Figure:
    """One printed number: what it is, its value, the target it is judged by (if any) and the verdict."""

    bench: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""  # human text, e.g. ">= 0.85"
    passed: bool | None = None  # None: informational, no target
    note: str = ""

    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        value = self.value
        if isinstance(value, float) and not value.is_integer() or abs(value) < 10:
            text = (
                f"{value:,.3g}"
                if abs(value) < 1
                else f"{value:,.2f}"
                if abs(value) < 100
                else f"{value:,.1f}"
            )
        else:
            text = f"{value:,.0f}"
        return f"{text} {self.unit}".strip()


def at_least(value: float | None, threshold: float) -> bool | None:
    return None if value is None else value >= threshold


def below(value: float | None, threshold: float) -> bool | None:
    return None if value is None else value < threshold


@dataclass
class Report:
    """What one bench module hands back: its figures plus free-form details for the JSON file."""

    bench: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    seconds: float = 0.0

    def add(self, name: str, value: float | None, unit: str = "", **kw: Any) -> Figure:
        fig = Figure(self.bench, name, None if value is None else float(value), unit, **kw)
        self.figures.append(fig)
        return fig

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "seconds": round(self.seconds, 1),
            "figures": [asdict(f) | {"verdict": f.verdict()} for f in self.figures],
            "details": self.details,
        }


def print_figures(figures: Iterable[Figure], *, title: str = "") -> None:
    rows = list(figures)
    if title:
        print(f"\n== {title}")
    width = max((len(f.name) for f in rows), default=10)
    for f in rows:
        target = f"target {f.target}" if f.target else ""
        line = f"  {f.name:<{width}}  {f.shown():>18}  {target:<24} {f.verdict()}"
        if f.note:
            line += f"  ({f.note})"
        print(line, flush=True)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    pg = ""
    try:
        pg = subprocess.run(
            ["psql", _pg_url("postgres"), "-Atc", "SHOW server_version"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
    }


def write_report(report: Report, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2, default=str))


def cli(description: str, bench: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{bench}", description=description)
    parser.add_argument("--quick", action="store_true", help="a short smoke run with small counts")
    parser.add_argument("--json", type=Path, help="write this bench's figures and details here")
    return parser


# ------------------------------------------------------------------------------------------------ services, DBs


def _pg_url(dbname: str) -> str:
    return f"{PG_ADMIN_URL.rstrip('/')}/{dbname}"


def recreate_database(name: str) -> str:
    """Drop (forcing other sessions off) and create ``name``; return its URL for DATABASE_URL."""
    import psycopg

    with psycopg.connect(_pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return _pg_url(name)


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(_pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(url: str = REDIS_BASE) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def check_services() -> None:
    import psycopg
    import redis

    try:
        with psycopg.connect(_pg_url("postgres"), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}") from None
    try:
        redis.Redis.from_url(REDIS_BASE, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        raise SystemExit(f"Redis is not reachable at {REDIS_BASE}: {exc}") from None


def connector_env(database_url: str, redis_url: str = REDIS_BASE, **extra: str) -> dict[str, str]:
    """The environment of a production deployment on this machine (PostgreSQL, Redis broker, DEBUG off).

    ``CONNECTOR_ENV=production`` with throwaway keys; ``SECURE_SSL_REDIRECT`` stays on and the load generator sends
    ``X-Forwarded-Proto: https`` as the TLS-terminating proxy in front of gunicorn would. Log level is the
    production default (INFO) unless ``LOG_LEVEL`` is given.
    """
    static = RESULTS_DIR / "tmp" / "static"
    static.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_SETTINGS_MODULE", "Q_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "connector.settings",
            "CONNECTOR_ENV": "production",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123456789",
            "ENCRYPTION_KEY": "bench-only-encryption-key-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "STATIC_ROOT": str(static),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def configure_tenant(env: dict[str, str], bc_api_base: str, x3_url: str, work: Path) -> None:
    from simulators.stack import tenant_document

    doc = work / "tenant.json"
    doc.write_text(json.dumps(tenant_document(bc_api_base, x3_url)))
    manage(env, "configure_tenant", str(doc))


# --------------------------------------------------------------------------------------------------- processes


class Proc:
    """A child process in its own process group, logging to a file; stopped (group-wide) by :meth:`stop`."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self._log = log.open("w")
        self.popen = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait()
        # anything left in the group (gunicorn workers, cluster processes) goes too
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def wait_http(url: str, timeout: float = 60, proc: Proc | None = None) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2, headers={"X-Forwarded-Proto": "https"}).status_code < 500:
                return
        except requests.RequestException:
            pass
        if proc is not None and not proc.alive():
            raise RuntimeError(f"process exited while waiting for {url}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{url} did not answer in {timeout:.0f} s" + (f"\n{proc.tail()}" if proc else "")
            )
        time.sleep(0.2)


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def descendants(pid: int, *, include_self: bool = True) -> list[int]:
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(kids.get(current, []))
    return out if include_self else out[1:]


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU seconds of one process (plus its exited, reaped children's when asked); 0 when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process tree, including descendants that already exited (recycled workers)."""
    return sum(cpu_seconds(p, reaped_children=True) for p in descendants(pid))


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL server process on the machine (backends come and go: use deltas)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            total += cpu_seconds(int(entry.name), reaped_children=True)
    return total


def redis_cpu_seconds() -> float:
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(f"/proc/{entry.name}/comm").read_text().strip().startswith("redis-server"):
                    total += cpu_seconds(int(entry.name), reaped_children=True)
            except OSError:
                continue
    return total


class CpuWatch:
    """Who used the machine's CPU over an interval: this bench (its process tree), PostgreSQL + Redis (shared
    services, counted as ours), and everything else ("foreign": other work on the machine that skews figures)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.box0 = machine_cpu_seconds()
        self.own0 = tree_cpu_seconds(os.getpid())
        self.svc0 = postgres_cpu_seconds() + redis_cpu_seconds()

    def stop(self) -> dict[str, float]:
        seconds = max(1e-9, time.monotonic() - self.t0)
        box = machine_cpu_seconds() - self.box0
        own = tree_cpu_seconds(os.getpid()) - self.own0
        svc = postgres_cpu_seconds() + redis_cpu_seconds() - self.svc0
        foreign = max(0.0, box - own - svc)
        return {
            "seconds": round(seconds, 2),
            "machine_busy_pct_of_one_core": round(box * 100 / seconds, 1),
            "bench_pct_of_one_core": round(own * 100 / seconds, 1),
            "postgres_redis_pct_of_one_core": round(svc * 100 / seconds, 1),
            "foreign_pct_of_one_core": round(foreign * 100 / seconds, 1),
        }


FOREIGN_WARN_PCT = 15.0
FOREIGN_MAX_PCT = 25.0  # a measurement with more foreign load than this is "disturbed"


def clean(watch: dict[str, float]) -> bool:
    return watch["foreign_pct_of_one_core"] <= FOREIGN_MAX_PCT


def foreign_note(watch: dict[str, float]) -> str:
    pct = watch["foreign_pct_of_one_core"]
    return (
        f"  !! other work on the machine used {pct:.0f}% of a core meanwhile: figures are skewed"
        if pct > FOREIGN_WARN_PCT
        else ""
    )


def wait_until_quiet(max_wait: float = 15.0, threshold_pct: float = 10.0) -> float:
    """Wait (up to ``max_wait`` s) until the machine's busy CPU, outside this bench, is under ``threshold_pct`` of
    one core over a 2-second look; return the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        watch = CpuWatch()
        time.sleep(1.5)
        reading = watch.stop()
        pct = reading["foreign_pct_of_one_core"] + reading["postgres_redis_pct_of_one_core"]
        if pct <= threshold_pct or time.monotonic() > deadline:
            if pct > threshold_pct:
                print(
                    f"  !! machine still busy ({pct:.0f}% of a core outside this bench): measuring anyway",
                    flush=True,
                )
            return pct


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


# ------------------------------------------------------------------------------------------------------ numbers


def percentile(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def start_simulators(
    work: Path, *, bc_args: Sequence[str] = ()
) -> tuple[Any, Any, list[Any], dict[str, Any]]:
    """Both simulators as separate processes, the demo store (3 channels, USD, 8 % tax) and the X3 chart.

    Returns ``(bc_control, x3_control, processes, info)``; ``info`` has base URLs, the BC api base and pids.
    """
    from simulators.control import BigCommerceControl, SageX3Control, spawn
    from simulators.sagex3 import DEFAULT_CHART
    from simulators.stack import ACCESS_TOKEN, CLIENT_SECRET, EXTRA_ACCOUNTS, STORE_HASH, X3_PASSWORD, X3_USER

    procs = []
    bc_proc, bc_banner = spawn("bigcommerce", "--stores", "0", *bc_args)
    procs.append(bc_proc)
    x3_proc, x3_banner = spawn("sagex3", "--folder", "SEED", "--user", f"{X3_USER}:{X3_PASSWORD}")
    procs.append(x3_proc)
    bc = BigCommerceControl(bc_banner["base_url"], timeout=120)
    x3 = SageX3Control(x3_banner["base_url"], timeout=120)
    bc.create_store(
        hash=STORE_HASH,
        access_token=ACCESS_TOKEN,
        client_secret=CLIENT_SECRET,
        channels=3,
        currency="USD",
        tax_rate="0.08",
        orders=0,
    )
    x3.configure(chart=sorted(set(DEFAULT_CHART) | set(EXTRA_ACCOUNTS)), closed_periods=[])
    info = {
        "bc_url": bc_banner["base_url"],
        "x3_url": x3_banner["base_url"],
        "bc_pid": bc_proc.pid,
        "x3_pid": x3_proc.pid,
    }
    return bc, x3, procs, info


def stop_simulators(procs: list[Any]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class World:
    """A fresh bench database (migrated, tenant ``demo`` configured) and both simulators on free ports."""

    name: str
    env: dict[str, str]
    bc: Any
    x3: Any
    info: dict[str, Any]
    work: Path
    procs: list[Any] = field(default_factory=list)

    def stop(self, *, keep_db: bool = False) -> None:
        stop_simulators(self.procs)
        if not keep_db:
            drop_database(self.name)


def prepare_world(name: str, *, cluster: str, bc_args: Sequence[str] = (), **extra_env: str) -> World:
    from simulators.stack import STORE_HASH

    check_services()
    work = RESULTS_DIR / "tmp" / name
    work.mkdir(parents=True, exist_ok=True)
    db_url = recreate_database(name)
    flush_redis()
    env = connector_env(db_url, Q_CLUSTER_NAME=cluster, **extra_env)
    bc, x3, procs, info = start_simulators(work, bc_args=bc_args)
    try:
        manage(env, "migrate", "--noinput")
        configure_tenant(env, info["bc_url"], info["x3_url"], work)
    except BaseException:
        stop_simulators(procs)
        raise
    info["store_hash"] = STORE_HASH
    return World(name=name, env=env, bc=bc, x3=x3, info=info, work=work, procs=procs)


def django_setup(env: dict[str, str]) -> None:
    """Configure Django in this process exactly as the connector's processes are (same environment)."""
    import logging

    os.environ.update(env)
    import django

    django.setup()
    logging.getLogger("django-q").setLevel(logging.WARNING)  # this process only enqueues: no line per task


def sim_api_calls(stats: dict[str, Any]) -> dict[str, int]:
    """API requests per endpoint from a simulator's ``/_sim/stats`` (BigCommerce: the demo store only)."""
    from simulators.stack import STORE_HASH

    if "stores" in stats:  # BigCommerce: {"stores": {hash: {...}}, "global": {...}}
        stats = stats["stores"].get(STORE_HASH, {})
    return dict(stats.get("by_endpoint", {}))


def diff_counts(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    out = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in out.items() if v}
