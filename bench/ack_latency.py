"""Ack latency, first visible output, start-up and memory of `sophia run` vs a bare Bolt app.

The fake Slack and the fake model server (tests/fakes) run in this process; each app runs
as its own subprocess, so the fakes and the app share neither an event loop nor a GIL, and
the memory figures are the app's own. Per app:

1. start-up: spawn → the fake has a connected, hello'd Socket Mode websocket;
2. idle RSS: after the process has gone quiet (Sophia imports litellm in the background
   right after connecting; at least 3 s);
3. single events: mentions one at a time (each acked and answered before the next);
4. burst: N mentions pushed as fast as the fake can send them, each in its own channel.

Run from the repo root: `.venv/bin/python bench/ack_latency.py [--events N] [--single N]
[--quick]`. It reports; it does not fail on a missed target (exit 1 only if it broke).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.llm import FakeLLM  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

BARE_APP = ROOT / "bench" / "bare_bolt_app.py"
LLM_KEY = "sk-bench-llm-key-0123456789"
APOLOGY = ":warning: Something went wrong"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
WARM_UP_EVENTS = 3  # unmeasured, before the single-event run (Bolt's first auth.test, etc.)

TARGETS = {
    "burst_ack_ratio": 1.2,  # burst ack p99 ≤ 1.2 × bare Bolt
    "single_ack_p99_ms": 5.0,
    "first_visible_p99_ms": 50.0,
    "idle_rss_mb": 250.0,
    "startup_s": 3.0,
}


class BenchError(Exception):
    """The benchmark itself could not run (as opposed to an app missing a target)."""


# ---------------------------------------------------------------------------------- helpers


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / Threads from /proc/<pid>/status (memory in kB)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs "5"); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def mention(i: int, prefix: str) -> dict:
    return {
        "type": "app_mention",
        "user": "U0USER",
        "text": f"<@UBOT> benchmark question {prefix}{i}: what is {i} plus one?",
        "channel": f"C{prefix}{i:06d}",
    }


async def wait_for(
    slack: FakeSlack,
    predicate: Callable[[], Any],
    timeout: float,
    proc: asyncio.subprocess.Process | None = None,
) -> bool:
    """Wait until predicate() is truthy (re-checked whenever the fake sees anything); False on
    timeout, or as soon as `proc` has exited."""
    deadline = time.perf_counter() + timeout
    while (remaining := deadline - time.perf_counter()) > 0:
        try:
            await slack.wait_until(predicate, min(1.0, remaining))
        except TimeoutError:
            if proc is not None and proc.returncode is not None:
                return bool(predicate())
            continue
        return True
    return False


class LoopLag:
    """How late this process's event loop wakes up: a measure of how busy the fakes are."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - t - self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RssSampler:
    """Samples the app's VmRSS while a phase runs."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.max_kb = pid, interval, 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.max_kb = max(self.max_kb, proc_status(self.pid).get("VmRSS", 0))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.max_kb = max(self.max_kb, proc_status(self.pid).get("VmRSS", 0))


# ------------------------------------------------------------------------ reply tracking


@dataclass
class Replies:
    """Reads the fake's Web API calls incrementally and keys each reply by channel.

    Every benchmark event has a channel of its own, so a channel is one event's thread.
    Visible output: chat.startStream or chat.postMessage (Sophia's placeholder, the bare
    app's say). Complete: chat.stopStream, the placeholder's final chat.update (it carries
    the footer), Sophia's apology, or, for the bare app, its one postMessage.
    """

    slack: FakeSlack
    sophia: bool
    expected_ts: dict[str, str] = field(default_factory=dict)  # channel -> event ts
    first_visible: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    opened: Counter[str] = field(default_factory=Counter)  # reply messages opened per channel
    finished: Counter[str] = field(default_factory=Counter)
    apologies: Counter[str] = field(default_factory=Counter)
    wrong_thread: int = 0
    failed_calls: Counter[str] = field(default_factory=Counter)  # "method: error" -> count
    methods: Counter[str] = field(default_factory=Counter)
    _seen: int = 0
    _placeholders: set[tuple[str, str]] = field(default_factory=set)
    _done_order: list[str] = field(default_factory=list)

    def update(self) -> None:
        calls = self.slack.calls
        while self._seen < len(calls):
            call = calls[self._seen]
            self._seen += 1
            self.methods[call.method] += 1
            response = call.response or {}
            if not response.get("ok"):
                self.failed_calls[f"{call.method}: {response.get('error')}"] += 1
                continue
            channel = str(call.args.get("channel") or "")
            if call.method in ("chat.startStream", "chat.postMessage"):
                apology = str(call.args.get("text") or "").startswith(APOLOGY)
                self.first_visible.setdefault(channel, call.time)
                if apology:
                    self.apologies[channel] += 1
                    self._finish(channel, call.time)
                    continue
                self.opened[channel] += 1
                wanted = self.expected_ts.get(channel)
                if self.sophia and wanted and call.args.get("thread_ts") != wanted:
                    self.wrong_thread += 1
                if not self.sophia:
                    self._finish(channel, call.time)
                elif call.method == "chat.postMessage":
                    self._placeholders.add((channel, str(response.get("ts"))))
            elif call.method == "chat.stopStream":
                self._finish(channel, call.time)
            elif call.method == "chat.update" and (channel, call.args.get("ts")) in (
                self._placeholders
            ):
                blocks = call.args.get("blocks") or []
                if blocks and isinstance(blocks[-1], dict) and blocks[-1].get("type") == "context":
                    self._finish(channel, call.time)

    def _finish(self, channel: str, at: float) -> None:
        if channel not in self.done:
            self.done[channel] = at
            self._done_order.append(channel)
        self.finished[channel] += 1

    def all_done(self, channels: list[str]) -> Callable[[], bool]:
        """A cheap predicate (incremental, O(new calls)): every channel has a complete reply."""
        pending, seen = set(channels), 0

        def check() -> bool:
            nonlocal seen
            self.update()
            pending.difference_update(self._done_order[seen:])
            seen = len(self._done_order)
            return not pending

        return check


# ------------------------------------------------------------------------------- results


@dataclass
class AppResult:
    name: str
    startup_s: float | None = None
    settle_s: float | None = None  # connected → process quiet (background imports done)
    idle_rss_mb: float | None = None
    idle_threads: int | None = None
    first_ack_ms: float | None = None  # the first event after start-up
    first_done_ms: float | None = None
    single_ack_ms: list[float] = field(default_factory=list)
    single_visible_ms: list[float] = field(default_factory=list)
    single_total_ms: list[float] = field(default_factory=list)
    single_missing: int = 0
    burst_n: int = 0
    burst_push_s: float | None = None
    burst_ack_ms: list[float] = field(default_factory=list)
    burst_unacked: int = 0
    burst_visible_ms: list[float] = field(default_factory=list)
    burst_total_s: float | None = None
    burst_complete: int = 0
    burst_duplicates: int = 0
    burst_apologies: int = 0
    burst_wrong_thread: int = 0
    burst_peak_rss_mb: float | None = None  # VmHWM since a reset just before the burst
    peak_rss_mb: float | None = None  # VmHWM over the whole run
    burst_cpu_s: float | None = None  # app CPU during the burst
    bench_cpu_s: float | None = None  # this process (the fakes) during the burst
    bench_lag_p99_ms: float | None = None
    bench_lag_max_ms: float | None = None
    web_calls: Counter[str] = field(default_factory=Counter)
    failed_calls: Counter[str] = field(default_factory=Counter)
    llm_requests: int = 0
    exit_code: int | None = None
    stderr_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- the runner


def child_env(slack: FakeSlack, llm: FakeLLM, data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "SOPHIA_", "OPENROUTER")) and k not in PROXY_VARS
    }
    env.update(
        SLACK_BOT_TOKEN=slack.bot_token,
        SLACK_APP_TOKEN=slack.app_token,
        SLACK_API_URL=slack.api_url,
        SOPHIA_LLM_API_BASE=llm.base_url,
        SOPHIA_LLM_API_KEY=LLM_KEY,
        SOPHIA_HEALTH_PORT="0",
        SOPHIA_DATA_DIR=str(data_dir),
        SOPHIA_LOG_LEVEL="WARNING",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONUNBUFFERED="1",
    )
    return env


def sophia_command() -> list[str]:
    script = Path(sys.executable).parent / "sophia"
    if script.exists():
        return [str(script), "run"]
    found = shutil.which("sophia")
    return [found, "run"] if found else [sys.executable, "-m", "bot.cli", "run"]


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.wait_for(proc.wait(), 5)
    return proc.returncode


async def wait_quiet(pid: int, minimum: float, maximum: float) -> float:
    """Wait until the process uses < 4% CPU for 1 s (and at least `minimum` s); returns
    when it went quiet, in seconds from now."""
    start = time.perf_counter()
    quiet_since: float | None = None
    last = cpu_seconds(pid)
    while True:
        await asyncio.sleep(0.5)
        now, used = time.perf_counter(), cpu_seconds(pid)
        busy = used - last > 0.02
        last = used
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now - 0.5
        elapsed = now - start
        if quiet_since is not None and now - quiet_since >= 1.0 and elapsed >= minimum:
            return quiet_since - start
        if elapsed >= maximum:
            return elapsed


async def run_single(
    slack: FakeSlack,
    replies: Replies,
    result: AppResult,
    proc: asyncio.subprocess.Process,
    n: int,
    prefix: str,
) -> None:
    failures = 0
    for i in range(-WARM_UP_EVENTS, n):
        event = mention(i + WARM_UP_EVENTS, prefix)
        envelope_id = await slack.push_event(event, timeout=10)
        channel = event["channel"]
        replies.expected_ts[channel] = slack.envelopes[-1]["payload"]["event"]["ts"]
        acked = await wait_for(slack, lambda e=envelope_id: e in slack.acks, 10, proc)
        done = await wait_for(slack, replies.all_done([channel]), 15, proc)
        sent = slack.sent_times[envelope_id]
        if i == -WARM_UP_EVENTS:  # the first event after start-up: lazy set-up shows here
            if acked:
                result.first_ack_ms = (slack.ack_times[envelope_id] - sent) * 1000
            if done:
                result.first_done_ms = (replies.done[channel] - sent) * 1000
        if proc.returncode is not None:
            raise BenchError(f"{result.name} exited (code {proc.returncode}) during the run")
        if i < 0:
            continue
        if acked:
            result.single_ack_ms.append((slack.ack_times[envelope_id] - sent) * 1000)
        if channel in replies.first_visible:
            result.single_visible_ms.append((replies.first_visible[channel] - sent) * 1000)
        if done:
            result.single_total_ms.append((replies.done[channel] - sent) * 1000)
        else:
            result.single_missing += 1
            failures += 1
            if failures >= 3:
                result.notes.append(f"single-event run stopped after {i + 1} events: no replies")
                result.single_missing += n - i - 1
                return


async def run_burst(
    slack: FakeSlack,
    replies: Replies,
    result: AppResult,
    proc: asyncio.subprocess.Process,
    n: int,
    prefix: str,
) -> None:
    pid = proc.pid
    events = [mention(i, prefix) for i in range(n)]
    channels = [e["channel"] for e in events]
    result.burst_n = n
    sampler, lag = RssSampler(pid), LoopLag()
    sampler.start()
    lag.start()
    cpu0, bench_cpu0 = cpu_seconds(pid), time.process_time()
    first_envelope = len(slack.envelopes)
    t0 = time.perf_counter()
    envelope_ids = [await slack.push_event(e, timeout=10) for e in events]
    result.burst_push_s = time.perf_counter() - t0
    for envelope in slack.envelopes[first_envelope:]:
        ev = envelope["payload"]["event"]
        replies.expected_ts[ev["channel"]] = ev["ts"]
    ok = await wait_for(slack, replies.all_done(channels), max(60.0, n * 0.1), proc)
    if ok:  # give late or duplicate replies a moment to show up
        await asyncio.sleep(1.0)
    await wait_for(slack, lambda: all(e in slack.acks for e in envelope_ids), 5, proc)
    if proc.returncode is not None:
        result.notes.append(f"the app exited (code {proc.returncode}) during the burst")
    result.bench_cpu_s = time.process_time() - bench_cpu0
    result.burst_cpu_s = cpu_seconds(pid) - cpu0
    await lag.stop()
    await sampler.stop()
    replies.update()
    result.burst_peak_rss_mb = sampler.max_kb / 1024  # replaced by VmHWM where it can be reset
    lags_ms = [x * 1000 for x in lag.lags]
    result.bench_lag_p99_ms = percentile(lags_ms, 99)
    result.bench_lag_max_ms = max(lags_ms, default=None)

    sent = slack.sent_times
    for envelope_id, channel in zip(envelope_ids, channels, strict=True):
        if envelope_id in slack.ack_times:
            result.burst_ack_ms.append((slack.ack_times[envelope_id] - sent[envelope_id]) * 1000)
        else:
            result.burst_unacked += 1
        if channel in replies.first_visible:
            delta = replies.first_visible[channel] - sent[envelope_id]
            result.burst_visible_ms.append(delta * 1000)
    done = [replies.done[c] for c in channels if c in replies.done]
    result.burst_complete = len(done)
    if done:
        result.burst_total_s = max(done) - sent[envelope_ids[0]]
    result.burst_duplicates = sum(
        1 for c in channels if replies.opened[c] > 1 or replies.finished[c] > 1
    )
    result.burst_apologies = sum(1 for c in channels if replies.apologies[c])


async def bench_app(name: str, llm: FakeLLM, args: argparse.Namespace) -> AppResult:
    sophia = name == "sophia"
    result = AppResult(name)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    llm_before = len(llm.requests)
    try:
        async with FakeSlack() as slack:
            replies = Replies(slack, sophia=sophia)
            cmd = sophia_command() if sophia else [sys.executable, str(BARE_APP)]
            env = child_env(slack, llm, tmp / "data")
            stderr_path = tmp / "stderr.txt"
            with (tmp / "stdout.txt").open("wb") as out, stderr_path.open("wb") as err:
                t0 = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    *cmd, env=env, cwd=tmp, stdout=out, stderr=err, start_new_session=True
                )
            try:
                try:
                    await slack.wait_connected(timeout=30)
                except TimeoutError as exc:
                    raise BenchError(
                        f"{name} did not connect within 30 s; stderr:\n"
                        + stderr_path.read_text(errors="replace")[-3000:]
                    ) from exc
                result.startup_s = time.perf_counter() - t0
                print(f"[{name}] connected after {result.startup_s:.2f} s", flush=True)

                result.settle_s = await wait_quiet(proc.pid, minimum=3.0, maximum=30.0)
                status = proc_status(proc.pid)
                result.idle_rss_mb = status.get("VmRSS", 0) / 1024
                result.idle_threads = status.get("Threads")
                print(f"[{name}] idle RSS {result.idle_rss_mb:.0f} MB", flush=True)

                await run_single(slack, replies, result, proc, args.single, prefix="S")
                print(f"[{name}] {args.single} single events done", flush=True)

                await asyncio.sleep(0.5)
                hwm_before = proc_status(proc.pid).get("VmHWM", 0)
                reset = reset_peak_rss(proc.pid)
                if not reset:
                    result.notes.append("could not reset VmHWM: burst peak RSS is sampled")
                await run_burst(slack, replies, result, proc, args.events, prefix="B")
                print(f"[{name}] burst of {args.events} done", flush=True)
                hwm_after = proc_status(proc.pid).get("VmHWM", 0)
                if reset and hwm_after:
                    result.burst_peak_rss_mb = hwm_after / 1024
                if max(hwm_before, hwm_after):
                    result.peak_rss_mb = max(hwm_before, hwm_after) / 1024
            finally:
                result.exit_code = await stop_process(proc)
            replies.update()
            result.web_calls = replies.methods
            result.failed_calls = replies.failed_calls
            result.burst_wrong_thread = replies.wrong_thread
            result.llm_requests = len(llm.requests) - llm_before
            result.stderr_lines = stderr_path.read_text(errors="replace").splitlines()
    finally:
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            for part in ("stdout", "stderr"):
                with contextlib.suppress(OSError):
                    shutil.copy(tmp / f"{part}.txt", args.logs / f"{name}.{part}.txt")
        shutil.rmtree(tmp, ignore_errors=True)
    return result


# ------------------------------------------------------------------------------ printing


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}×"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "MISS")


def print_table(s: AppResult, b: AppResult, args: argparse.Namespace) -> None:
    p = percentile
    t = TARGETS
    rows: list[tuple[str, ...]] = []

    def below(value: float | None, limit: float) -> bool | None:
        return None if value is None else value < limit

    def row(
        label: str,
        sv: float | None,
        bv: float | None,
        digits: int = 1,
        target: str = "",
        check: Callable[[float | None], bool | None] | None = None,
        show_ratio: bool = True,
    ) -> None:
        s_ok = check(sv) if check else None
        b_ok = check(bv) if check else None
        rows.append(
            (label, fmt(sv, digits), fmt(bv, digits), ratio(sv, bv) if show_ratio else "",
             target, verdict(s_ok) if check else "", verdict(b_ok) if check else "")
        )  # fmt: skip

    def under(limit: float) -> Callable[[float | None], bool | None]:
        return lambda v: below(v, limit)

    row("start-up: spawn → connected (s)", s.startup_s, b.startup_s, 2,
        f"< {t['startup_s']:g} s", under(t["startup_s"]))  # fmt: skip
    row("  connected → process quiet (s)", s.settle_s, b.settle_s, 1, show_ratio=False)
    row("idle RSS (MB)", s.idle_rss_mb, b.idle_rss_mb, 0,
        f"< {t['idle_rss_mb']:g} MB", under(t["idle_rss_mb"]))  # fmt: skip
    row("first event after start: ack (ms)", s.first_ack_ms, b.first_ack_ms, 2)
    row("first event after start: reply done (ms)", s.first_done_ms, b.first_done_ms, 1)
    n1 = args.single
    row(f"single ({n1}) ack p50 (ms)", p(s.single_ack_ms, 50), p(b.single_ack_ms, 50), 2)
    row(f"single ({n1}) ack p99 (ms)", p(s.single_ack_ms, 99), p(b.single_ack_ms, 99), 2,
        f"< {t['single_ack_p99_ms']:g} ms", under(t["single_ack_p99_ms"]))  # fmt: skip
    row(f"single ({n1}) event→visible p50 (ms)",
        p(s.single_visible_ms, 50), p(b.single_visible_ms, 50), 2)  # fmt: skip
    row(f"single ({n1}) event→visible p99 (ms)",
        p(s.single_visible_ms, 99), p(b.single_visible_ms, 99), 2,
        f"< {t['first_visible_p99_ms']:g} ms", under(t["first_visible_p99_ms"]))  # fmt: skip
    row(f"single ({n1}) event→reply done p50 (ms)",
        p(s.single_total_ms, 50), p(b.single_total_ms, 50), 2)  # fmt: skip
    row(f"single ({n1}) event→reply done p99 (ms)",
        p(s.single_total_ms, 99), p(b.single_total_ms, 99), 2)  # fmt: skip
    n = args.events
    row(f"burst ({n}) push time (s)", s.burst_push_s, b.burst_push_s, 3)
    row(f"burst ({n}) ack p50 (ms)", p(s.burst_ack_ms, 50), p(b.burst_ack_ms, 50), 1)
    s99, b99 = p(s.burst_ack_ms, 99), p(b.burst_ack_ms, 99)
    ratio_ok = None if s99 is None or not b99 else s99 / b99 <= t["burst_ack_ratio"]
    row(f"burst ({n}) ack p99 (ms)", s99, b99, 1, f"≤ {t['burst_ack_ratio']:g}× bare",
        lambda v: ratio_ok if v is s99 else None)  # fmt: skip
    row(f"burst ({n}) event→visible p50 (ms)",
        p(s.burst_visible_ms, 50), p(b.burst_visible_ms, 50), 1)  # fmt: skip
    row(f"burst ({n}) event→visible p99 (ms)",
        p(s.burst_visible_ms, 99), p(b.burst_visible_ms, 99), 1,
        f"< {t['first_visible_p99_ms']:g} ms", under(t["first_visible_p99_ms"]))  # fmt: skip
    row(f"burst ({n}) total: first send → last reply (s)", s.burst_total_s, b.burst_total_s, 2)
    row(f"burst ({n}) replies complete", s.burst_complete, b.burst_complete, 0)
    row("peak RSS during the burst (MB)", s.burst_peak_rss_mb, b.burst_peak_rss_mb, 0)
    row("peak RSS over the whole run (MB)", s.peak_rss_mb, b.peak_rss_mb, 0)
    row("burst app CPU (s)", s.burst_cpu_s, b.burst_cpu_s, 2)
    s_per = s.burst_cpu_s / s.burst_n * 1000 if s.burst_cpu_s and s.burst_n else None
    b_per = b.burst_cpu_s / b.burst_n * 1000 if b.burst_cpu_s and b.burst_n else None
    row("burst app CPU per event (ms)", s_per, b_per, 2)
    row("burst bench (fakes) CPU (s)", s.bench_cpu_s, b.bench_cpu_s, 2, show_ratio=False)
    row("burst bench loop lag p99 (ms)", s.bench_lag_p99_ms, b.bench_lag_p99_ms, 1,
        show_ratio=False)  # fmt: skip

    headers = ("metric", "sophia", "bare Bolt", "ratio", "target", "sophia", "bare")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    print()
    print(line(headers))
    print(rule)
    for r in rows:
        print(line(r))
    print(rule)
    print(
        "ratio = sophia / bare Bolt; the last two columns hold each app against the target.\n"
        "Times are taken in the bench process (one perf_counter clock): sent = just before the\n"
        "fake writes the envelope; ack = when the fake reads the ack; visible = when the fake\n"
        "receives the first chat.startStream / chat.postMessage for that event's thread; done =\n"
        "chat.stopStream (or the final chat.update; bare Bolt: its say). Every event has its own\n"
        f"channel. The single-event run follows {WARM_UP_EVENTS} unmeasured warm-up events (the "
        "'first event' rows).\n'connected → process quiet': background work after connecting "
        "(Sophia imports litellm);\nidle RSS is read after it. Bench loop lag: how late the "
        "fakes' event loop woke up (>~10 ms:\nthe fakes themselves were busy and inflate the "
        "measured latencies)."
    )


def print_details(r: AppResult) -> None:
    events = WARM_UP_EVENTS + len(r.single_ack_ms) + r.single_missing + r.burst_n
    calls = ", ".join(f"{m}={c}" for m, c in sorted(r.web_calls.items()))
    print(f"\n[{r.name}] Web API calls ({events} events): {calls}")
    if r.bench_lag_max_ms is not None:
        print(
            f"[{r.name}] bench (fakes) during the burst: CPU {fmt(r.bench_cpu_s, 2)} s over "
            f"{fmt(r.burst_total_s, 2)} s; loop lag p99 {fmt(r.bench_lag_p99_ms)} ms, "
            f"max {fmt(r.bench_lag_max_ms)} ms"
        )
    if r.name == "sophia":
        print(f"[{r.name}] model requests: {r.llm_requests}")
    problems = []
    if r.failed_calls:
        problems.append(
            "failed calls: " + ", ".join(f"{k} ×{v}" for k, v in r.failed_calls.items())
        )
    if r.single_missing:
        problems.append(f"{r.single_missing} single events without a complete reply")
    if r.burst_n and r.burst_complete < r.burst_n:
        problems.append(f"{r.burst_n - r.burst_complete} burst events without a complete reply")
    if r.burst_unacked:
        problems.append(f"{r.burst_unacked} burst envelopes never acked")
    if r.burst_duplicates:
        problems.append(f"{r.burst_duplicates} burst events answered more than once")
    if r.burst_apologies:
        problems.append(f"{r.burst_apologies} burst events answered with the apology")
    if r.burst_wrong_thread:
        problems.append(f"{r.burst_wrong_thread} replies outside the mention's thread")
    if r.exit_code not in (0, -signal.SIGTERM):
        problems.append(f"exit code {r.exit_code} after SIGTERM")
    problems.extend(r.notes)
    for problem in problems:
        print(f"[{r.name}] ! {problem}")
    noisy = [ln for ln in r.stderr_lines if ln.strip()]
    if not noisy:
        print(f"[{r.name}] stderr: empty")
        return
    kinds: Counter[str] = Counter()
    in_traceback = False
    for ln in noisy:
        if ln.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and not ln.startswith((" ", "During handling", "The above")):
            kinds[f"exception: {ln[:110]}"] += 1  # the last line of a traceback
            in_traceback = False
        elif not in_traceback and ("WARNING" in ln or "ERROR" in ln or "CRITICAL" in ln):
            kinds[re.sub(r"^\d\d:\d\d:\d\d(\.\d+)? ", "", ln)[:110]] += 1  # no time
    print(f"[{r.name}] stderr: {len(noisy)} lines; warnings, errors and exceptions:")
    for text, count in kinds.most_common(8):
        print(f"    ×{count:<5} {text}")


def git_state() -> str:
    """The commit being measured, and whether the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.splitlines()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{head[:90]}" + (f" (+{len(dirty)} modified files)" if dirty else "")


def print_machine() -> None:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"machine: {usable} usable CPUs (nproc), {cpu}; {platform.platform()}\n"
        f"python {platform.python_version()} ({sys.executable}); slack_bolt "
        f"{package_version('slack_bolt')}, slack_sdk {package_version('slack_sdk')}, aiohttp "
        f"{package_version('aiohttp')}, litellm {package_version('litellm')}\n"
        f"sophia at {git_state()}"
    )


async def main_async(args: argparse.Namespace) -> int:
    print_machine()
    print(f"events: burst {args.events}, single {args.single}\n", flush=True)
    started = time.perf_counter()
    async with FakeLLM() as llm:
        sophia = await bench_app("sophia", llm, args)
        bare = await bench_app("bare-bolt", llm, args)
    print_table(sophia, bare, args)
    print_details(sophia)
    print_details(bare)
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.1f} s")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1000, help="burst size (default 1000)")
    parser.add_argument("--single", type=int, default=200, help="one-at-a-time events (200)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 burst, 20 single")
    parser.add_argument("--logs", type=Path, help="keep each app's stdout/stderr in this folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.single = 100, 20
    if args.events < 1 or args.single < 1:
        parser.error("--events and --single must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in PROXY_VARS:  # loopback only; the Slack clients ignore NO_PROXY
        os.environ.pop(name, None)
    try:
        return asyncio.run(main_async(args))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
