"""Benchmark of call setup: SIPp callers dialling a number that answers and hangs up at once.

Project path: the real server (``python -m callcenter.cli serve``, this
checkout's code) in its own process,
pinned to one core, with an SQLite database in a temporary folder migrated by
``callcenter db upgrade``; the number ``100`` is routed to the flow
``bench/flows/answer_hangup.yaml``, a single ``hangup`` step. Each call goes
the whole production way: the UDP transport, the INVITE server transaction
(100 Trying at once), the trunk check, the number's flow, the RTP port opened
and the SDP answer, the 200 retransmitted until the ACK, the interpreter's
Hangup, and the server's own BYE in a client transaction; the call should
then be logged as an interaction. SIPp, pinned to the other core, runs
``bench/scenarios/uac_answered_hangup.xml``: INVITE, 100 and 180 optional,
200, ACK, then the server's BYE and the 200 for it. That is what the
production path does for a flow that hangs up: the server, not the caller,
ends the call. The rate goes up step by step (``--seconds`` a step), doubling
until a step has a failed call, then halves the gap twice (once with
``--quick``) around the first failing rate; the highest clean rate is run
twice more, and holds when at least two of its three runs had no failed
call. A failed call is any that SIPp counts as failed: a timeout on a reply
(``-recv_timeout``), an unexpected message, a refusal. SIPp's pace is
checked too: a step whose calls SIPp could not start within the step's time
(plus a second) counts as failed, since the rate was then never offered.

After the ladder the benchmark counts the interactions the database holds:
every call answered should have been logged as one. The count, and the
number of calls answered, are in the figures; the exit status is non-zero
when fewer calls were logged than answered.

Ceiling: the same UAC scenario and the same ladder against SIPp's own UAS,
pinned to the server's core, running ``bench/scenarios/uas_answer_hangup.xml``
(SIPp's stock ``-sn uas`` turned around so that the UAS sends the BYE, the
same six messages a call). It goes on doubling until it fails too, or up to
``--ceiling-cap``; a ceiling that never failed is a lower bound, and says so.

Run from the project root::

    .venv/bin/python bench/sip_cps.py [--quick] [--seconds S] [--ceiling-cap CPS] [--nice N]

The last line printed is one JSON object with the figures. Needs SIPp
(Debian ``sip-tester``) and ``taskset``; without two cores nothing is pinned,
and the figures say so. Every process of the run gets a session of its own
at ``--nice`` (see :func:`spawn`), so other people's work on a shared machine
does not take the cores from under it; each step still reports how busy
others kept the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Container, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
#: The checkout this file belongs to: its code is what runs and is measured.
ROOT = BENCH.parent
SCENARIOS = BENCH / "scenarios"
FLOWS = BENCH / "flows"
#: The server and its CLI, run from ``ROOT`` as a module: an editable install
#: of the package (and the ``callcenter`` script) may point at another copy.
CALLCENTER = (sys.executable, "-m", "callcenter.cli")
#: The server (or the ceiling's UAS) runs on one core, the load on the other.
SERVER_CORE = 0
CLIENT_CORE = 1
#: Niceness of every process of the run (``--nice``): ahead of other work on a
#: shared machine, as a server is on its own; 0 leaves priorities alone.
NICENESS = -10
#: A failed step during which other processes kept more than this share of a
#: core busy is run again (twice at most): its failure may be theirs. A call
#: setup step is, when no more than ``NOISY_FAILURES`` of its calls failed (a
#: server past its limit fails far more).
NOISY_CORES = 0.25
NOISY_RETRIES = 2
NOISY_FAILURES = 0.02
NUMBER = "100"
FLOW = "answer_hangup"
FIRST_RATE = 50
#: Seconds a step offers its rate; ``--quick`` shortens it.
STEP_SECONDS = 20.0
QUICK_STEP_SECONDS = 5.0
#: The project's ladder stops here even if nothing failed.
MAX_RATE = 25_600
CEILING_CAP = 12_800
QUICK_CEILING_CAP = 3_200
#: Halvings of the gap between the last clean rate and the first failed one.
REFINEMENTS = 2
QUICK_REFINEMENTS = 1
#: Runs at the top rate, and how many of them must be clean.
TOP_RUNS = 3
TOP_CLEAN = 2
#: How long SIPp waits for any expected message before failing the call, ms.
RECV_TIMEOUT_MS = 5000
#: SIPp writes response times out every this many calls (the rest at the end is lost).
RTT_DUMP_EVERY = 20
#: Socket buffers of SIPp (both ends in the ceiling), as PEERS.md advises.
SIPP_BUFFER = 4 * 1024 * 1024
#: SIPp may be this late finishing its calls' starts before the step fails.
PACE_SLACK_SECONDS = 1.0
SERVER_START_TIMEOUT = 60.0
#: Longest wait for the spool to apply the last interactions.
RECORD_WAIT_SECONDS = 30.0
#: Pause between steps, so that the last step's calls and transactions are gone.
SETTLE_SECONDS = 3.0


class RunFailed(Exception):
    """A run could not be set up or carried out as the benchmark intends."""


# -- processes, pinned ----------------------------------------------------------------


def pinning_possible() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pinned(argv: Sequence[str], core: int | None) -> list[str]:
    """``argv`` run on ``core`` alone (through ``taskset``) at the run's :data:`NICENESS`."""
    out = ["taskset", "-c", str(core), *argv] if core is not None else list(argv)
    return ["nice", "-n", str(NICENESS), *out] if NICENESS else out


def add_nice_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nice",
        type=int,
        default=NICENESS,
        help=f"niceness of the server, the load and the harness (default {NICENESS};"
        " 0 to leave priorities alone)",
    )


def set_niceness(value: int) -> None:
    global NICENESS
    NICENESS = value


def niceness() -> int:
    return NICENESS


def settle_self(core: int | None) -> None:
    """Keep this process (the harness) on ``core`` and at the run's niceness too."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    if NICENESS:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, NICENESS)


async def spawn(argv: Sequence[str], **options: Any) -> asyncio.subprocess.Process:
    """Start a child of the run in a session of its own, at the run's niceness.

    With ``kernel.sched_autogroup_enabled`` (the default on desktops and on
    this kind of machine) a process's niceness counts only against its own
    session's other processes; the CPU is shared between sessions first. So
    each child gets its own session, whose autogroup gets the niceness
    (``/proc/PID/autogroup``), and other people's sessions on the machine do
    not take the cores from under the measurement.
    """
    proc = await asyncio.create_subprocess_exec(*argv, start_new_session=True, **options)
    if NICENESS:
        renice_session(proc.pid)
    return proc


def renice_session(pid: int) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(NICENESS))


def busy_seconds() -> float:
    """CPU time the whole machine spent busy since boot (all cores, from ``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_seconds() -> float:
    """CPU time of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` (its threads included), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def udp_drops(ports: Container[int]) -> int:
    """Datagrams the kernel dropped at full receive buffers of the local UDP ``ports``.

    Read from ``/proc/net/udp`` (the last column); sockets that closed take
    their count with them, so take differences over sockets that stay open.
    """
    total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            parts = line.split()
            port = int(parts[1].rsplit(":", 1)[1], 16)
            if port in ports:
                total += int(parts[-1])
    return total


def free_port(kind: int = socket.SOCK_DGRAM, *, both: bool = False) -> int:
    """A loopback port free now (for UDP, or for UDP and TCP at once with ``both``)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if not both:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
                try:
                    other.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RunFailed("no free loopback port")


def project_env() -> dict[str, str]:
    """The environment of the children: this checkout first on the module path."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


async def run_cli(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *CALLCENTER,
        *args,
        cwd=ROOT,
        env=project_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RunFailed(f"callcenter {' '.join(args)} failed:\n{output.decode(errors='replace')}")


async def stop_process(proc: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@dataclass(slots=True)
class Running:
    """A child process started by :func:`child`."""

    proc: asyncio.subprocess.Process
    log: Path
    #: The first line of its output that started with the awaited prefix.
    line: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def first_line(log: Path, prefix: str) -> str:
    """The first line of ``log`` that starts with ``prefix`` ("" if none yet)."""
    with log.open("rb") as source:
        for raw in source:
            text = raw.decode(errors="replace").rstrip()
            if text.startswith(prefix):
                return text
    return ""


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def child(
    argv: Sequence[str], log: Path, ready_prefix: str, timeout: float = SERVER_START_TIMEOUT
) -> AsyncIterator[Running]:
    """Run ``argv`` with its output in ``log`` until the block ends.

    Waits for a line starting with ``ready_prefix``. The output goes to a
    file, not a pipe: a server logging a line per call must not be slowed by
    the benchmark reading it, nor ever block on a full pipe.
    """
    with log.open("wb") as sink:
        proc = await spawn(argv, cwd=ROOT, env=project_env(), stdout=sink, stderr=sink)
    try:
        deadline = time.perf_counter() + timeout
        while not (line := first_line(log, ready_prefix)):
            if proc.returncode is not None or time.perf_counter() > deadline:
                raise RunFailed(f"{argv[0]} did not start; its last output:\n{tail(log)}")
            await asyncio.sleep(0.1)
        yield Running(proc, log, line)
    finally:
        await stop_process(proc)


# -- the server ------------------------------------------------------------------------


def database_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'callcenter.db'}"


def server_config(
    folder: Path,
    sip_port: int,
    numbers: dict[str, str],
    *,
    rtp_ports: tuple[int, int] = (20000, 29999),
    extra: str = "",
    database: str = "",
) -> Path:
    """The run's settings: loopback HTTP and SIP, the loopback as a trunk, the bench's flows.

    The database is an SQLite file in ``folder`` unless ``database`` names another.
    """
    numbers_toml = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in numbers.items())
    toml = f"""\
mode = "production"

[http]
host = "127.0.0.1"
port = 0

[database]
url = {json.dumps(database or database_url(folder))}
upgrade_on_start = false

[spool]
directory = {json.dumps(str(folder / "spool"))}

[sip]
host = "127.0.0.1"
port = {sip_port}
trunks = ["127.0.0.1"]
# SIPp answers only the first digest challenge it gets.
digest_algorithms = ["MD5", "SHA-256"]

[voice]
numbers = {{ {numbers_toml} }}
flows_directory = {json.dumps(str(FLOWS))}
recordings_directory = {json.dumps(str(folder / "recordings"))}
prompt_cache_directory = {json.dumps(str(folder / "prompts"))}
rtp_first_port = {rtp_ports[0]}
rtp_last_port = {rtp_ports[1]}
{extra}"""
    path = folder / "callcenter.toml"
    path.write_text(toml)
    return path


@contextlib.asynccontextmanager
async def server(config: Path, core: int | None) -> AsyncIterator[Running]:
    """The migrated server's process, on ``core``; yields once it listens for HTTP."""
    await run_cli("db", "upgrade", "--config", str(config))
    argv = pinned([*CALLCENTER, "serve", "--config", str(config)], core)
    async with child(argv, config.with_name("server.log"), "callcenter listening on ") as run:
        yield run


def count_rows(folder: Path, query: str) -> int:
    """One number from the run's SQLite database (read while the server runs)."""
    with contextlib.closing(sqlite3.connect(folder / "callcenter.db", timeout=10)) as db:
        return int(db.execute(query).fetchone()[0])


async def settled_count(folder: Path, query: str, expected: int, timeout: float) -> int:
    """Poll ``query`` until it reaches ``expected`` or stops moving for two seconds."""
    deadline = time.perf_counter() + timeout
    last, since = -1, time.perf_counter()
    while True:
        now = time.perf_counter()
        count = count_rows(folder, query)
        if count >= expected or now > deadline:
            return count
        if count != last:
            last, since = count, now
        elif now - since > 2.0:
            return count
        await asyncio.sleep(0.25)


# -- SIPp ------------------------------------------------------------------------------


@dataclass(slots=True)
class SippRun:
    returncode: int
    #: The last row of ``-trace_stat``, by column name.
    stats: dict[str, str]
    #: Every row of ``-trace_stat`` (one a second), for the pace check.
    rows: list[dict[str, str]]
    #: Response times (INVITE to 200) of the calls, ms, when traced.
    rtts: list[float]
    errors: str
    output: str

    def count(self, name: str) -> int:
        value = self.stats.get(f"{name}(C)", "0").strip()
        return int(value) if value.isdigit() else 0


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise RunFailed("SIPp is not installed (Debian package sip-tester)")
    return found


@contextlib.contextmanager
def sipp_folder(parent: Path, label: str) -> Any:
    folder = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=parent))
    captures = Path("/usr/share/sip-tester")
    if captures.exists():
        (folder / "pcap").symlink_to(captures)
    yield folder


def read_stats(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as source:
        rows = list(csv.reader(source, delimiter=";"))
    if len(rows) < 2:
        return []
    header = rows[0]
    return [dict(zip(header, row, strict=False)) for row in rows[1:] if row]


def read_rtts(folder: Path) -> list[float]:
    values: list[float] = []
    for path in folder.glob("*_rtt.csv"):
        with path.open(newline="") as source:
            for row in csv.reader(source, delimiter=";"):
                with contextlib.suppress(ValueError, IndexError):
                    values.append(float(row[1]))
    return values


async def run_sipp(args: Sequence[str], folder: Path, core: int | None, timeout: float) -> SippRun:
    """Run SIPp to its end in ``folder`` (statistics, response times and errors kept there)."""
    stat_file = folder / "stats.csv"
    error_file = folder / "errors.log"
    argv = pinned(
        [
            sipp_binary(),
            *args,
            "-nostdin",
            "-cp",
            "0",
            "-trace_stat",
            "-stf",
            str(stat_file),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            str(error_file),
        ],
        core,
    )
    proc = await spawn(
        argv,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "TERM": "dumb"},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        await stop_process(proc, 5)
        out = b""
    rows = read_stats(stat_file)
    errors = error_file.read_text(errors="replace") if error_file.exists() else ""
    return SippRun(
        proc.returncode if proc.returncode is not None else -1,
        rows[-1] if rows else {},
        rows,
        read_rtts(folder),
        errors,
        out.decode(errors="replace"),
    )


@contextlib.asynccontextmanager
async def sipp_background(
    args: Sequence[str], folder: Path, core: int | None, label: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A SIPp that runs until the block ends (a UAS); fails fast if it exits at once."""
    argv = pinned([sipp_binary(), *args, "-nostdin", "-cp", "0"], core)
    log = folder / f"{label}.log"
    with log.open("wb") as sink:
        proc = await spawn(
            argv, cwd=folder, stdout=sink, stderr=sink, env={**os.environ, "TERM": "dumb"}
        )
    try:
        await asyncio.sleep(0.5)
        if proc.returncode is not None:
            raise RunFailed(f"SIPp {label} exited at once:\n{tail(log)}")
        yield proc
    finally:
        await stop_process(proc, 5)


# -- one step ------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def finite(value: float) -> float | None:
    """``value``, or None where JSON has no number for it (NaN, infinity)."""
    return value if math.isfinite(value) else None


def jsonable(data: Any) -> Any:
    """``data`` with every float that is not finite made None, for strict JSON."""
    if isinstance(data, float):
        return finite(data)
    if isinstance(data, dict):
        return {k: jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [jsonable(v) for v in data]
    return data


@dataclass(slots=True)
class Step:
    rate: int
    calls: int
    successful: int
    failed: int
    #: Seconds SIPp took to start all its calls (from its once-a-second statistics).
    start_span_s: float
    kept_pace: bool
    retransmissions: int
    setup_p50_ms: float
    setup_p99_ms: float
    #: CPU of the server (or the ceiling's UAS) per successful call, ms.
    cpu_ms_per_call: float
    #: Datagrams the kernel dropped at the server's full SIP socket buffer.
    udp_drops: int
    #: Cores kept busy by other processes (neither server nor SIPp) during the step.
    other_cores: float
    failure_kinds: dict[str, int] = field(default_factory=dict)
    #: Earlier runs of this step that failed while other processes were busy.
    noisy_reruns: int = 0

    @property
    def noisy(self) -> bool:
        return self.other_cores > NOISY_CORES and self.failed <= NOISY_FAILURES * self.calls

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.kept_pace and self.successful == self.calls

    def describe(self) -> str:
        verdict = "clean" if self.clean else "FAILED"
        kinds = ", ".join(f"{k} {v}" for k, v in self.failure_kinds.items())
        pace = "" if self.kept_pace else f", SIPp needed {self.start_span_s:.0f} s to start them"
        return (
            f"{self.rate:6,d} cps: {self.successful:7,d}/{self.calls:<7,d} ok, {self.failed:5,d}"
            f" failed{f' ({kinds})' if kinds else ''}{pace}, setup p50 {self.setup_p50_ms:.0f}"
            f" ms p99 {self.setup_p99_ms:.0f} ms, {self.retransmissions:,d} retransmissions,"
            f" {self.cpu_ms_per_call:.3f} ms CPU/call, {self.udp_drops} drops,"
            f" others {self.other_cores:.2f} cores  [{verdict}]"
            + (f" (run again after {self.noisy_reruns} noisy)" if self.noisy_reruns else "")
        )


def start_span(rows: list[dict[str, str]], calls: int) -> float:
    """Seconds from SIPp's start until it had created all ``calls`` (a second's precision)."""
    for row in rows:
        created = row.get("TotalCallCreated", "0").strip()
        if created.isdigit() and int(created) >= calls:
            elapsed = row.get("ElapsedTime(C)", "").strip()
            with contextlib.suppress(ValueError):
                hours, minutes, seconds = (float(part) for part in elapsed.split(":"))
                return hours * 3600 + minutes * 60 + seconds
    return math.inf


async def run_step(
    target: str, rate: int, seconds: float, folder: Path, target_pid: int, sip_port: int
) -> Step:
    """Offer ``rate`` calls a second for ``seconds`` to ``target``; what became of them."""
    calls = max(1, round(rate * seconds))
    args = [
        target,
        "-sf",
        str(SCENARIOS / "uac_answered_hangup.xml"),
        "-s",
        NUMBER,
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-r",
        str(rate),
        "-m",
        str(calls),
        # SIPp's default cap on open calls would quietly lower the rate.
        "-l",
        str(min(15_000, max(1_000, rate * 10))),
        "-recv_timeout",
        str(RECV_TIMEOUT_MS),
        "-buff_size",
        str(SIPP_BUFFER),
        "-trace_rtt",
        "-rtt_freq",
        str(RTT_DUMP_EVERY),
    ]
    cpu_before, busy_before, children_before = (
        cpu_seconds(target_pid),
        busy_seconds(),
        children_seconds(),
    )
    began = time.perf_counter()
    drops_before = udp_drops((sip_port,))
    with sipp_folder(folder, f"uac-{rate}") as work:
        run = await run_sipp(
            args, work, CLIENT_CORE if pinning_possible() else None, seconds * 3 + 60
        )
    cpu = cpu_seconds(target_pid) - cpu_before
    client = children_seconds() - children_before
    others = busy_seconds() - busy_before - cpu - client
    wall = time.perf_counter() - began
    successful, failed = run.count("SuccessfulCall"), run.count("FailedCall")
    kinds = {
        name[len("Failed") : -3]: int(value)
        for name, value in run.stats.items()
        if name.startswith("Failed")
        and name.endswith("(C)")
        and name != "FailedCall(C)"
        and value.strip().isdigit()
        and int(value) > 0
    }
    if run.returncode not in (0, 1) and not run.stats:
        raise RunFailed(f"SIPp failed to run:\n{run.output[-2000:]}\n{run.errors[-2000:]}")
    span = start_span(run.rows, calls)
    return Step(
        rate=rate,
        calls=calls,
        successful=successful,
        failed=failed + max(0, calls - successful - failed),
        start_span_s=span,
        kept_pace=span <= seconds + PACE_SLACK_SECONDS,
        retransmissions=run.count("Retransmissions"),
        setup_p50_ms=percentile(run.rtts, 0.5),
        setup_p99_ms=percentile(run.rtts, 0.99),
        cpu_ms_per_call=cpu * 1e3 / successful if successful else math.nan,
        udp_drops=udp_drops((sip_port,)) - drops_before,
        other_cores=max(0.0, others / wall),
        failure_kinds=kinds,
    )


# -- the ladder ----------------------------------------------------------------------


@dataclass(slots=True)
class Ladder:
    label: str
    steps: list[Step] = field(default_factory=list)
    #: The highest rate that held, its three runs, and whether the ladder hit its cap.
    top: int = 0
    top_runs: list[Step] = field(default_factory=list)
    capped: bool = False


async def climb(
    label: str,
    target: str,
    target_pid: int,
    sip_port: int,
    folder: Path,
    seconds: float,
    cap: int,
    refinements: int,
) -> Ladder:
    """Double the rate until a step fails (or ``cap``), refine, then confirm the top rate."""
    ladder = Ladder(label)

    async def step(rate: int) -> Step:
        result = await run_step(target, rate, seconds, folder, target_pid, sip_port)
        reruns = 0
        while not result.clean and result.noisy and reruns < NOISY_RETRIES:
            reruns += 1
            print(f"  {label:7s} {result.describe()}  (others were busy: again)", flush=True)
            await asyncio.sleep(SETTLE_SECONDS)
            result = await run_step(target, rate, seconds, folder, target_pid, sip_port)
        result.noisy_reruns = reruns
        ladder.steps.append(result)
        print(f"  {label:7s} {result.describe()}", flush=True)
        await asyncio.sleep(SETTLE_SECONDS)
        return result

    clean, failing = 0, 0
    rate = FIRST_RATE
    while rate <= cap:
        if (await step(rate)).clean:
            clean = rate
            rate *= 2
        else:
            failing = rate
            break
    if not failing:
        ladder.capped = True
    elif clean:
        for _ in range(refinements):
            middle = (clean + failing) // 2
            if middle in (clean, failing):
                break
            if (await step(middle)).clean:
                clean = middle
            else:
                failing = middle
    # Confirm the top: two more runs; it holds if two of three were clean.
    while clean:
        runs = [s for s in ladder.steps if s.rate == clean][-1:]
        for _ in range(TOP_RUNS - len(runs)):
            runs.append(await step(clean))
        if sum(r.clean for r in runs) >= TOP_CLEAN:
            ladder.top, ladder.top_runs = clean, runs
            break
        lower = [s.rate for s in ladder.steps if s.clean and s.rate < clean]
        clean = max(lower) if lower else 0
    return ladder


def ladder_figures(ladder: Ladder) -> dict[str, Any]:
    runs = ladder.top_runs
    if not runs:
        return {"top": 0}
    return {
        "top": ladder.top,
        "top_clean_runs": sum(r.clean for r in runs),
        "top_successful_cps_median": round(
            statistics.median(r.successful / r.calls * r.rate for r in runs), 1
        ),
        "top_setup_p99_ms_median": statistics.median(r.setup_p99_ms for r in runs),
        "top_cpu_ms_per_call_median": round(statistics.median(r.cpu_ms_per_call for r in runs), 4),
    }


# -- the run -----------------------------------------------------------------------------


async def bench(seconds: float, ceiling_cap: int, refinements: int) -> dict[str, Any]:
    pin = pinning_possible()
    server_core = SERVER_CORE if pin else None
    settle_self(CLIENT_CORE if pin else None)
    load_before = os.getloadavg()[0]
    print(
        f"call setup: SIPp UAC -> number {NUMBER} (flow {FLOW}: answer, hang up at once),"
        f" {seconds:g} s a step, rates doubling from {FIRST_RATE} cps;"
        + (
            f" server on core {SERVER_CORE}, SIPp on core {CLIENT_CORE}"
            if pin
            else " NOT pinned (fewer than two cores or no taskset)"
        )
        + f", nice {NICENESS} (load average {load_before:.2f} before the run)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cc_bench_cps_") as name:
        folder = Path(name)
        sip_port = free_port(both=True)
        config = server_config(folder, sip_port, {NUMBER: FLOW})
        async with server(config, server_core) as running:
            project = await climb(
                "project",
                f"127.0.0.1:{sip_port}",
                running.pid,
                sip_port,
                folder,
                seconds,
                MAX_RATE,
                refinements,
            )
            answered = sum(s.successful for s in project.steps)
            recorded = await settled_count(
                folder,
                "SELECT count(*) FROM interactions WHERE channel = 'voice'",
                answered,
                RECORD_WAIT_SECONDS,
            )
        uas_port = free_port()
        uas_args = [
            "-sf",
            str(SCENARIOS / "uas_answer_hangup.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(uas_port),
            "-buff_size",
            str(SIPP_BUFFER),
        ]
        async with sipp_background(uas_args, folder, server_core, "ceiling-uas") as uas:
            ceiling = await climb(
                "ceiling",
                f"127.0.0.1:{uas_port}",
                uas.pid,
                uas_port,
                folder,
                seconds,
                ceiling_cap,
                refinements,
            )

    max_cps, ceiling_cps = project.top, ceiling.top
    ratio = max_cps / ceiling_cps if ceiling_cps else math.nan
    mine, top = ladder_figures(project), ladder_figures(ceiling)
    print(
        f"  project path : {max_cps:,d} calls/s with no failed call"
        f" ({mine.get('top_clean_runs', 0)} of {TOP_RUNS} runs clean at that rate;"
        f" median setup p99 {mine.get('top_setup_p99_ms_median', math.nan):.0f} ms,"
        f" {mine.get('top_cpu_ms_per_call_median', math.nan):.3f} ms of server CPU a call)"
    )
    print(
        f"  ceiling      : {ceiling_cps:,d} calls/s"
        + (" or more (never failed up to the cap)" if ceiling.capped else "")
        + " (SIPp UAC against SIPp UAS, same scenario)"
    )
    print(f"  ratio        : {ratio:.3f}  (project / ceiling)")
    print(
        f"  interactions : {recorded:,d} recorded for {answered:,d} calls answered"
        # More is fine: a call SIPp gave up on (a timeout under overload) was
        # still answered, and logged, by the server.
        + ("" if recorded >= answered else "  <-- calls that were never logged")
    )
    return {
        "max_cps": max_cps,
        "ceiling_cps": ceiling_cps,
        "ratio": round(ratio, 4),
        "ceiling_capped": ceiling.capped,
        "top_clean_runs": mine.get("top_clean_runs", 0),
        "top_successful_cps_median": mine.get("top_successful_cps_median", 0),
        "setup_p99_ms": mine.get("top_setup_p99_ms_median", math.nan),
        "server_cpu_ms_per_call": mine.get("top_cpu_ms_per_call_median", math.nan),
        "ceiling_uas_cpu_ms_per_call": top.get("top_cpu_ms_per_call_median", math.nan),
        "calls_answered": answered,
        "interactions_recorded": recorded,
        "step_seconds": seconds,
        "pinned": pin,
        "nice": NICENESS,
        "steps": [asdict(s) for s in project.steps],
        "ceiling_steps": [asdict(s) for s in ceiling.steps],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, help=f"seconds a step (default {STEP_SECONDS:g})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"steps of {QUICK_STEP_SECONDS:g} s, one refinement, ceiling up to"
        f" {QUICK_CEILING_CAP:,d} cps",
    )
    parser.add_argument("--ceiling-cap", type=int, help="highest rate the ceiling is offered")
    add_nice_option(parser)
    args = parser.parse_args(argv)
    seconds = args.seconds or (QUICK_STEP_SECONDS if args.quick else STEP_SECONDS)
    cap = args.ceiling_cap or (QUICK_CEILING_CAP if args.quick else CEILING_CAP)
    refinements = QUICK_REFINEMENTS if args.quick else REFINEMENTS
    set_niceness(args.nice)
    if seconds <= 0 or cap < FIRST_RATE:
        parser.error(f"--seconds must be positive and --ceiling-cap at least {FIRST_RATE}")
    try:
        figures = asyncio.run(bench(seconds, cap, refinements))
    except RunFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(jsonable(figures), allow_nan=False))
    return 0 if figures["interactions_recorded"] >= figures["calls_answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
