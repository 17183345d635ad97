#!/usr/bin/env python3
"""Reliability probes for `llmpq serve` (issue #14): concurrent, soak, stop, big, freeze.

Runs an already-built host, makes a tiny model, starts `llmpq serve` on a free port per probe, probes it as a
hostile but fair client would, prints a short table per probe and writes one JSON result per probe under --out.
Every process it starts is killed on exit, also on Ctrl+C and on errors (the script makes itself the child
subreaper, so the stage servers a killed `serve` leaves behind are still its descendants).
Standard library only; Linux only (/proc). See README.md next to this file.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBES = ("concurrent", "soak", "stop", "big", "freeze")
now = time.monotonic


# ---------------------------------------------------------------------------------------------------------------------
# Processes: every one started is tracked, and cleanup() kills them all (and any descendant they left behind).

class Processes:
    def __init__(self) -> None:
        self.popens: list[subprocess.Popen] = []
        self.frozen: dict[int, int] = {}  # pid -> start time, SIGCONT before anything else at cleanup
        self.lock = threading.Lock()

    def add(self, p: subprocess.Popen) -> None:
        with self.lock:
            self.popens.append(p)

    def cleanup(self) -> None:
        for pid, start in list(self.frozen.items()):
            if proc_start_time(pid) == start:
                _signal(pid, signal.SIGCONT)
        self.frozen.clear()
        for p in self.popens:
            if p.poll() is None:
                _signal(p.pid, signal.SIGTERM)
        deadline = now() + (3 if INTERRUPTED.is_set() else 10)
        for p in self.popens:
            try:
                p.wait(timeout=max(0.1, deadline - now()))
            except subprocess.TimeoutExpired:
                kill_tree(p.pid)
                p.wait()
        # Stage servers and runners run in their own process groups; as subreaper we inherit the ones left over.
        for _ in range(50):
            reap_orphans(self.popens)
            procs = proc_table()
            left = [d for d in descendants(os.getpid()) if d in procs and procs[d][1] != "Z"]
            if not left:
                break
            for pid in left:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.1)
            reap_orphans(self.popens)


PROCS = Processes()
INTERRUPTED = threading.Event()  # Ctrl+C or SIGTERM: stop servers quickly, no drain


def kill_tree(pid: int) -> None:
    for p in [pid] + descendants(pid):
        _signal(p, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass  # cleanup then only reaches the processes still attached to their parents


def proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, state, start time) for every process in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        table[int(name)] = (int(rest[1]), rest[0], int(rest[19]))
    return table


def descendants(pid: int) -> list[int]:
    table = proc_table()
    children: dict[int, list[int]] = {}
    for p, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def reap_orphans(popens: list[subprocess.Popen]) -> None:
    """Reaps zombies reparented to this script (not the ones subprocess waits for itself)."""
    ours = {p.pid for p in popens if p.returncode is None}
    for pid, (ppid, state, _) in proc_table().items():
        if ppid == os.getpid() and state == "Z" and pid not in ours:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def proc_start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def tree_rss_mb(pid: int) -> float | None:
    own = rss_mb(pid)
    if own is None:
        return None
    return round(own + sum(rss_mb(c) or 0 for c in descendants(pid)), 1)


# ---------------------------------------------------------------------------------------------------------------------
# The host and its server.

def find_llmpq(arg: str | None) -> list[str]:
    if arg:
        path = Path(arg)
        if not path.exists():
            sys.exit(f"--llmpq {arg}: no such file; point it at llmpq.dll (or the llmpq apphost) of a built host.")
    else:
        built = [REPO / f"src/LlmPq.Host/bin/{c}/net10.0/llmpq.dll" for c in ("Release", "Debug")]
        built = [p for p in built if p.exists()]
        if not built:
            sys.exit(f"No built host under {REPO}/src/LlmPq.Host/bin; build it "
                     "(LLMPQ_SKIP_NATIVE=1 dotnet build src/LlmPq.Host -c Release) or pass --llmpq PATH/llmpq.dll.")
        path = max(built, key=lambda p: p.stat().st_mtime)  # the newest of Release and Debug
    return ["dotnet", str(path)] if path.suffix == ".dll" else [str(path)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `llmpq serve` in its own session (Ctrl+C reaches only this script, which then stops it in order)."""

    def __init__(self, cfg: "Config", label: str, extra: list[str] | None = None) -> None:
        self.cfg = cfg
        self.port = free_port()
        self.args = cfg.llmpq + ["serve", "--model", str(cfg.model), "--port", str(self.port)] + (extra or []) \
            + cfg.serve_args
        self.log_path = cfg.out / f"{label}.serve.log"
        self.proc: subprocess.Popen | None = None
        self.model_id = None
        self.rpc_names: dict[int, str] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float) -> "Server":
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=REPO, start_new_session=True)
        log.close()
        PROCS.add(self.proc)
        deadline = now() + timeout_s
        while now() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode} while starting; see {self.log_path}")
            status, body = http_get(self.port, "/health", 2)
            if status == 200:
                _, models = http_get(self.port, "/v1/models", 5)
                self.model_id = json.loads(models)["data"][0]["id"]
                return self
            time.sleep(0.25)
        raise RuntimeError(f"serve was not healthy after {timeout_s:.0f} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> tuple[int | None, float, bool]:
        """Sends sig; returns (exit code, seconds to exit, whether it had to be killed)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0, False
        t = now()
        _signal(self.pid, sig)
        try:
            rc = self.proc.wait(timeout=min(timeout_s, 3) if INTERRUPTED.is_set() else timeout_s)
            return rc, now() - t, False
        except subprocess.TimeoutExpired:
            kill_tree(self.pid)
            rc = self.proc.wait()
            return rc, now() - t, True

    def rpc_servers(self) -> list[dict]:
        """The ggml-rpc-server processes under this server, with their stage name from its log where it says."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        names = {int(m.group(3)): m.group(1)
                 for m in re.finditer(r"Stage (\S+) is up on (\S+) \(ggml-rpc-server pid (\d+)", text)}
        found = [{"pid": p, "stage": names.get(p), "start": proc_start_time(p)}
                 for p in descendants(self.pid) if "ggml-rpc-server" in cmdline(p)]
        return sorted(found, key=lambda x: (x["stage"] is None, x["stage"] or "", x["pid"]))


# ---------------------------------------------------------------------------------------------------------------------
# HTTP.

def http_get(port: int, path: str, timeout_s: float) -> tuple[int | None, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return None, type(e).__name__
    finally:
        conn.close()


def chat_body(model: str, stream: bool, max_tokens: int, prompt: str) -> bytes:
    return json.dumps({"model": model, "stream": stream, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": prompt}]}).encode()


def settimeout(conn: http.client.HTTPConnection, deadline: float) -> None:
    # http.client drops conn.sock once the response says Connection: close; the response then reads on under the
    # connection's own timeout.
    if conn.sock is not None:
        conn.sock.settimeout(max(0.05, deadline - now()))


def blank(stream: bool) -> dict:
    return {"stream": stream, "status": None, "retry_after": None, "outcome": None, "t_start": None, "t_status": None,
            "t_first_token": None, "t_end": None, "tokens": 0, "error": None, "json_error_body": None}


def chat(port: int, body: bytes, stream: bool, timeout_s: float, on_first_token=None, into: dict | None = None) -> dict:
    """One POST /v1/chat/completions on its own connection. The outcome is one of:
    done (200 and a complete answer: [DONE] on a stream), error_event (a stream that ended with an OpenAI error
    event), cut (a 200 stream that ended with neither), status_NNN (any other status, JSON error read),
    no_status (the connection failed before a status line), timeout (timeout_s passed first), bad_body.
    With into, the result is that dict, filled as the request goes (outcome None while it runs)."""
    r = into if into is not None else {}
    r.update(blank(stream), t_start=now())
    deadline = r["t_start"] + timeout_s
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    saw_error = False
    try:
        try:
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        except (BrokenPipeError, ConnectionResetError) as e:
            r["error"] = f"while sending: {type(e).__name__}"  # a server may answer early (413) and close
        resp = conn.getresponse()
        r["status"], r["t_status"] = resp.status, now()
        r["retry_after"] = resp.getheader("Retry-After")
        if resp.status != 200 or not stream:
            settimeout(conn, deadline)
            data = resp.read()
            r["t_end"] = now()
            try:
                obj = json.loads(data)
            except ValueError:
                obj = None
            if resp.status == 200:
                ok = isinstance(obj, dict) and obj.get("choices")
                r["outcome"] = "done" if ok else "bad_body"
                if ok:
                    r["tokens"] = (obj.get("usage") or {}).get("completion_tokens", 0)
            else:
                r["outcome"] = f"status_{resp.status}"
                r["json_error_body"] = isinstance(obj, dict) and isinstance(obj.get("error"), dict)
                r["error"] = obj["error"].get("message") if r["json_error_body"] else data[:200].decode(errors="replace")
            return r
        while True:
            settimeout(conn, deadline)
            line = resp.readline()
            if not line:
                r["outcome"] = "error_event" if saw_error else "cut"
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                r["outcome"] = "error_event" if saw_error else "done"
                break
            try:
                obj = json.loads(payload)
            except ValueError:
                continue
            if isinstance(obj, dict) and "error" in obj:
                saw_error = True
                err = obj["error"]
                r["error"] = err.get("message") if isinstance(err, dict) else str(err)
                continue
            for choice in obj.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") or ("content" in delta and "role" not in delta):
                    r["tokens"] += 1
                    if r["t_first_token"] is None:
                        r["t_first_token"] = now()
                        if on_first_token:
                            on_first_token()
        r["t_end"] = now()
    except (socket.timeout, TimeoutError):
        r["outcome"], r["t_end"] = "timeout", now()
    except (OSError, http.client.HTTPException) as e:
        r["t_end"] = now()
        r["error"] = r["error"] or type(e).__name__
        if r["status"] is None:
            r["outcome"] = "no_status"
        else:
            r["outcome"] = "error_event" if saw_error else "cut"
    finally:
        conn.close()
    return r


def run_all(jobs) -> list[dict]:
    """Runs each job (a no-argument function returning a dict) on its own thread, all released at once."""
    results: list[dict | None] = [None] * len(jobs)
    go = threading.Event()

    def work(i, job):
        go.wait()
        try:
            results[i] = job()
        except Exception as e:  # noqa: BLE001 - a probe client error is a result, not a crash
            results[i] = {"outcome": "client_error", "error": repr(e)}

    threads = [threading.Thread(target=work, args=(i, j), daemon=True) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------------
# Statistics and output.

def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, int(-(-p * len(s) // 100)) - 1))], 4)  # nearest rank


def latency(r: dict) -> float | None:
    return None if r.get("t_end") is None else r["t_end"] - r["t_start"]


def counts(results: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        out[r["outcome"]] = out.get(r["outcome"], 0) + 1
    return dict(sorted(out.items()))


def summarize(results: list[dict]) -> dict:
    done = [latency(r) for r in results if r["outcome"] == "done"]
    s503 = [r for r in results if r.get("status") == 503]
    return {"requests": len(results), "outcomes": counts(results),
            "503_with_retry_after": sum(1 for r in s503 if r.get("retry_after")),
            "503_without_retry_after": sum(1 for r in s503 if not r.get("retry_after")),
            "done_p50_s": pct(done, 50), "done_p99_s": pct(done, 99),
            "all_p50_s": pct([x for x in map(latency, results) if x is not None], 50),
            "all_p99_s": pct([x for x in map(latency, results) if x is not None], 99)}


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[str(h) for h in header]] + [["-" if c is None else (f"{c:.3f}" if isinstance(c, float) else str(c))
                                           for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n== {title}")
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def relative(results: list[dict], t0: float) -> list[dict]:
    """The results with their monotonic times made relative to t0, for the JSON file."""
    out = []
    for r in results:
        r = dict(r)
        for k in ("t_start", "t_status", "t_first_token", "t_end"):
            if r.get(k) is not None:
                r[k] = round(r[k] - t0, 4)
        out.append(r)
    return out


def write(cfg: "Config", probe: str, result: dict) -> Path:
    path = cfg.out / f"{probe}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Probes.

class Config:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.llmpq = find_llmpq(a.llmpq)
        self.out = Path(a.out or REPO / f"eng/probes/out/{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}").resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.serve_args = a.serve_arg or []
        self.model = Path(a.model).resolve() if a.model else None

    def make_model(self) -> None:
        if self.model:
            return
        self.model = self.out / "m.gguf"
        cmd = self.llmpq + ["make-model", "--out", str(self.model)] + self.a.make_model_args.split()
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, start_new_session=True)
        if p.returncode != 0:
            raise RuntimeError(f"make-model failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")


def probe_concurrent(cfg: Config) -> dict:
    a = cfg.a
    srv = Server(cfg, "concurrent").start(a.start_timeout_s)
    phases = {}
    try:
        for stream in (True, False):
            n = a.concurrent
            jobs = [lambda i=i, s=stream: chat(srv.port, chat_body(srv.model_id, s, a.max_tokens, f"Say hi {i}"), s,
                                               a.request_timeout_s) for i in range(n)]
            t0 = now()
            res = run_all(jobs)
            wall = now() - t0
            phases["streaming" if stream else "non_streaming"] = {
                "summary": {**summarize(res), "wall_s": round(wall, 3)}, "requests": relative(res, t0)}
    finally:
        rc, exit_s, killed = srv.stop()
    rows = [[name, p["summary"]["requests"], json.dumps(p["summary"]["outcomes"]),
             f'{p["summary"]["503_with_retry_after"]}/{p["summary"]["503_with_retry_after"] + p["summary"]["503_without_retry_after"]}',
             p["summary"]["done_p50_s"], p["summary"]["done_p99_s"], p["summary"]["wall_s"]]
            for name, p in phases.items()]
    table(f"concurrent: {a.concurrent} at once per phase, max_tokens {a.max_tokens}",
          ["phase", "n", "outcomes", "503 w/ Retry-After", "p50 s", "p99 s", "wall s"], rows)
    return {"params": {"concurrent": a.concurrent, "max_tokens": a.max_tokens}, "server": srv.args,
            "server_exit": {"code": rc, "seconds": round(exit_s, 3), "killed": killed}, **phases}


def probe_soak(cfg: Config) -> dict:
    a = cfg.a
    srv = Server(cfg, "soak").start(a.start_timeout_s)
    rng = random.Random(a.seed)
    results: list[dict] = []
    lock = threading.Lock()
    rss: list[dict] = []
    threads: list[threading.Thread] = []
    inflight = threading.Semaphore(a.soak_max_inflight)
    try:
        t0 = now()
        stop_sampling = threading.Event()

        def sample():
            k = 0
            while True:
                rss.append({"t": round(now() - t0, 2), "rss_mb": rss_mb(srv.pid), "tree_rss_mb": tree_rss_mb(srv.pid)})
                k += 1
                if stop_sampling.wait(max(0, t0 + k * a.soak_bucket_s - now())):
                    break

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def one(i, scheduled):
            try:
                r = chat(srv.port, chat_body(srv.model_id, a.soak_stream, a.max_tokens, f"Tell me {i}"),
                         a.soak_stream, a.request_timeout_s)
                r["lag_s"] = round(r["t_start"] - scheduled, 4)  # how late the client itself sent it
                with lock:
                    results.append(r)
            finally:
                inflight.release()

        t, i = t0, 0
        while True:
            t += rng.expovariate(a.soak_rate)
            if t - t0 >= a.soak_seconds:
                break
            time.sleep(max(0, t - now()))
            inflight.acquire()
            th = threading.Thread(target=one, args=(i, t), daemon=True)
            th.start()
            threads.append(th)
            i += 1
        for th in threads:
            th.join()
        stop_sampling.set()
        sampler.join()
        rss.append({"t": round(now() - t0, 2), "rss_mb": rss_mb(srv.pid), "tree_rss_mb": tree_rss_mb(srv.pid),
                    "end": True})
    finally:
        rc, exit_s, killed = srv.stop()
    buckets = []
    for b in range(int(-(-a.soak_seconds // a.soak_bucket_s))):
        lo, hi = t0 + b * a.soak_bucket_s, t0 + (b + 1) * a.soak_bucket_s
        rs = [r for r in results if lo <= r["t_start"] < hi]
        done = [latency(r) for r in rs if r["outcome"] == "done"]
        buckets.append({"bucket": b, "from_s": b * a.soak_bucket_s, "requests": len(rs), "done": len(done),
                        "errors": len(rs) - len(done), "p50_s": pct(done, 50), "p99_s": pct(done, 99),
                        "outcomes": counts(rs), "max_client_lag_s": max((r["lag_s"] for r in rs), default=None)})
    rows = [[b["from_s"], b["requests"], b["errors"], b["p50_s"], b["p99_s"], b["max_client_lag_s"]] for b in buckets]
    table(f"soak: {a.soak_rate} req/s (Poisson) for {a.soak_seconds} s, max_tokens {a.max_tokens}, "
          f"stream {a.soak_stream}", ["from s", "requests", "errors", "p50 s", "p99 s", "client lag s"], rows)
    table("soak: serve RSS", ["t s", "RSS MB", "tree RSS MB"], [[x["t"], x["rss_mb"], x["tree_rss_mb"]] for x in rss])
    return {"params": {"rate": a.soak_rate, "seconds": a.soak_seconds, "bucket_s": a.soak_bucket_s,
                       "max_tokens": a.max_tokens, "stream": a.soak_stream, "seed": a.seed},
            "server": srv.args, "server_exit": {"code": rc, "seconds": round(exit_s, 3), "killed": killed},
            "summary": summarize(results), "buckets": buckets, "rss": rss,
            "requests": relative(sorted(results, key=lambda r: r["t_start"]), t0)}


def probe_stop(cfg: Config) -> dict:
    a = cfg.a
    extra = []
    if a.stop_shutdown_timeout_s is not None:
        extra += ["--shutdown-timeout-s", str(a.stop_shutdown_timeout_s)]
    if a.stop_parallel is not None:
        extra += ["--parallel", str(a.stop_parallel)]
    runs = []
    for run in range(a.stop_runs):
        srv = Server(cfg, f"stop-{run}", extra).start(a.start_timeout_s)
        first = {"count": 0, "last": None}
        lock = threading.Lock()

        def on_first():
            with lock:
                first["count"] += 1
                first["last"] = now()

        results: list[dict | None] = [None] * a.stop_streams
        try:
            body = chat_body(srv.model_id, True, a.stop_max_tokens, "Write a long story")

            def stream(i):
                results[i] = chat(srv.port, body, True, a.request_timeout_s, on_first)

            threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(a.stop_streams)]
            t0 = now()
            for th in threads:
                th.start()
            # SIGTERM once every stream that can decode has its first token: all of them, or no new one for a while
            # (the rest are queued behind --parallel) - or when waiting takes too long.
            while now() - t0 < a.stop_first_token_timeout_s:
                with lock:
                    c, last = first["count"], first["last"]
                if c >= a.stop_streams or (c > 0 and now() - last >= a.stop_quiet_s):
                    break
                time.sleep(0.02)
            with lock:
                firsts = first["count"]
            t_sig = now()
            _signal(srv.pid, signal.SIGTERM)
            late = {}

            def late_request():  # a request that arrives during the drain: expected 503 with Retry-After
                time.sleep(0.2)
                late.update(chat(srv.port, chat_body(srv.model_id, False, 8, "late"), False, 30))

            late_thread = threading.Thread(target=late_request, daemon=True)
            late_thread.start()
            timeout = (a.stop_shutdown_timeout_s if a.stop_shutdown_timeout_s is not None else 30) + a.stop_exit_grace_s
            try:
                rc = srv.proc.wait(timeout=timeout)
                killed = False
            except subprocess.TimeoutExpired:
                kill_tree(srv.pid)
                rc, killed = srv.proc.wait(), True
            exit_s = now() - t_sig
            for th in threads:
                th.join(timeout=10)
            late_thread.join(timeout=5)
        finally:
            srv.stop(signal.SIGKILL, 10)
        res = [r or {"outcome": "client_still_open", "t_start": t0} for r in results]
        runs.append({"run": run, "exit_code": rc, "exit_s": round(exit_s, 3), "killed": killed,
                     "first_tokens_at_sigterm": firsts, "sigterm_after_s": round(t_sig - t0, 3),
                     "outcomes": counts(res), "no_http_status": sum(1 for r in res if r.get("status") is None),
                     "late_request": relative([late], t0)[0] if late else None,
                     "streams": relative(res, t0), "server": srv.args})
    rows = [[r["run"], r["exit_code"], r["exit_s"], r["killed"], r["first_tokens_at_sigterm"],
             r["outcomes"].get("done", 0), r["outcomes"].get("error_event", 0), r["outcomes"].get("cut", 0),
             r["outcomes"].get("status_503", 0),
             sum(n for o, n in r["outcomes"].items() if o not in ("done", "error_event", "cut", "status_503")),
             r["no_http_status"], (r["late_request"] or {}).get("outcome")] for r in runs]
    table(f"stop: {a.stop_runs} runs, SIGTERM with {a.stop_streams} streams (max_tokens {a.stop_max_tokens}) in flight",
          ["run", "exit", "exit s", "killed", "1st tokens", "[DONE]", "error event", "cut", "503", "other", "no status",
           "late request"], rows)
    return {"params": {"runs": a.stop_runs, "streams": a.stop_streams, "max_tokens": a.stop_max_tokens,
                       "shutdown_timeout_s": a.stop_shutdown_timeout_s, "parallel": a.stop_parallel},
            "summary": {"exit_codes": sorted({str(r["exit_code"]) for r in runs}),
                        "exit_s_max": max(r["exit_s"] for r in runs),
                        "outcomes": counts([s for r in runs for s in r["streams"]]),
                        "no_http_status": sum(r["no_http_status"] for r in runs)},
            "runs": runs}


def probe_big(cfg: Config) -> dict:
    a = cfg.a
    extra = ["--max-request-bytes", str(a.big_max_request_bytes)] if a.big_max_request_bytes else []
    srv = Server(cfg, "big", extra).start(a.start_timeout_s)
    word = "hello "
    text = word * (a.big_mb * 1024 * 1024 // len(word))
    body = json.dumps({"model": srv.model_id, "max_tokens": 8, "messages": [{"role": "user", "content": text}]}).encode()
    del text
    rows, sends = [], []
    try:
        rss_before = rss_mb(srv.pid)
        for i in range(a.big_count):
            r = chat(srv.port, body, False, a.request_timeout_s)
            r["rss_after_mb"] = rss_mb(srv.pid)
            sends.append(r)
            rows.append([i, r["status"], r["outcome"], r["json_error_body"], latency(r), r["rss_after_mb"],
                         (r["error"] or "")[:60]])
        rss_after = rss_mb(srv.pid)
        time.sleep(a.big_settle_s)
        rss_settled = rss_mb(srv.pid)
        health = http_get(srv.port, "/health", 10)
    finally:
        rc, exit_s, killed = srv.stop()
    table(f"big: {a.big_count} bodies of {len(body) / 1e6:.1f} MB, one after another",
          ["#", "status", "outcome", "JSON error", "s", "RSS after MB", "error"], rows)
    print(f"RSS MB: before {rss_before}, after {rss_after}, after {a.big_settle_s} s {rss_settled}; "
          f"/health then {health[0]}")
    t0 = sends[0]["t_start"] if sends else 0
    return {"params": {"count": a.big_count, "body_bytes": len(body), "max_request_bytes": a.big_max_request_bytes,
                       "settle_s": a.big_settle_s},
            "server": srv.args, "server_exit": {"code": rc, "seconds": round(exit_s, 3), "killed": killed},
            "rss_mb": {"before": rss_before, "after": rss_after, "settled": rss_settled},
            "health_after": health[0], "statuses": counts(sends), "requests": relative(sends, t0)}


def probe_freeze(cfg: Config) -> dict:
    a = cfg.a
    srv = Server(cfg, "freeze", ["--cluster", str(Path(a.cluster).resolve())]).start(a.pipeline_start_timeout_s)
    frozen = None
    try:
        stages = srv.rpc_servers()
        if not stages:
            raise RuntimeError("no ggml-rpc-server under the pipeline's serve process; see " + str(srv.log_path))
        target = stages[a.freeze_stage % len(stages)]
        # Warm-up first: a watchdog measures iteration times before it trusts a deadline shorter than its ceiling.
        warmup = [chat(srv.port, chat_body(srv.model_id, False, a.freeze_warmup_tokens, f"warm up {i}"), False,
                       a.request_timeout_s) for i in range(a.freeze_warmup_requests)]
        first = threading.Event()
        live = [blank(True) for _ in range(a.freeze_streams)]
        window = a.freeze_timeout_s + a.freeze_recovery_timeout_s + 60  # the streams' own timeout: past the probe's

        body = chat_body(srv.model_id, True, a.freeze_max_tokens, "Write a long story")

        def stream(i):
            chat(srv.port, body, True, window, first.set, into=live[i])

        threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(a.freeze_streams)]
        t0 = now()
        for th in threads:
            th.start()
        if not first.wait(a.request_timeout_s):
            raise RuntimeError("no stream got a first token before the freeze; see " + str(srv.log_path))
        time.sleep(a.freeze_delay_s)
        t_freeze = now()
        at_freeze = [{"tokens": r["tokens"], "open": r["t_end"] is None} for r in live]
        os.kill(target["pid"], signal.SIGSTOP)
        frozen = target
        PROCS.frozen[target["pid"]] = target["start"]
        deadline = t_freeze + a.freeze_timeout_s

        health: list[dict] = []
        new_requests: list[dict] = []
        first_success = threading.Event()
        lock = threading.Lock()

        def new_request(k):
            r = chat(srv.port, chat_body(srv.model_id, False, 8, f"after {k}"), False, max(1, deadline - now()))
            with lock:
                new_requests.append(r)
            if r["outcome"] == "done":
                first_success.set()

        k = 0
        senders = []
        next_send = t_freeze + a.freeze_request_interval_s
        while now() < deadline and not first_success.is_set():
            status, text = http_get(srv.port, "/health", 2)
            state = f"{status} {text.strip()[:80]}" if status else f"no answer ({text})"
            if not health or health[-1]["state"] != state:
                health.append({"from_s": round(now() - t_freeze, 2), "state": state})
            health[-1]["to_s"] = round(now() - t_freeze, 2)
            if now() >= next_send and len(senders) - sum(1 for r in new_requests) < a.freeze_max_pending:
                th = threading.Thread(target=new_request, args=(k,), daemon=True)
                th.start()
                senders.append(th)
                k += 1
                next_send += a.freeze_request_interval_s
            first_success.wait(0.25)
        t_window_end = now()
        stage_alive = proc_start_time(target["pid"]) == target["start"]
        stages_after = srv.rpc_servers()
        # Snapshot before SIGCONT: what the freeze did, not what resuming did.
        snapshot = [dict(r) for r in live]
        with lock:
            news = [dict(r) for r in new_requests]
        # Recovery after SIGCONT (not part of the freeze result; it shows whether resuming unsticks the server).
        recovered_s = None
        if stage_alive:
            _signal(target["pid"], signal.SIGCONT)
            PROCS.frozen.pop(target["pid"], None)
            t_cont = now()
            while now() - t_cont < a.freeze_recovery_timeout_s:
                r = chat(srv.port, chat_body(srv.model_id, False, 8, "after resume"), False,
                         max(1, a.freeze_recovery_timeout_s - (now() - t_cont)))
                if r["outcome"] == "done":
                    recovered_s = round(now() - t_cont, 3)
                    break
                time.sleep(1)
        after_resume = counts([{"outcome": r["outcome"] or "open"} for r in live])
    finally:
        if frozen and proc_start_time(frozen["pid"]) == frozen["start"]:
            _signal(frozen["pid"], signal.SIGCONT)
        PROCS.frozen.clear()
        rc, exit_s, killed = srv.stop()

    in_flight = [r for r in snapshot if r["t_end"] is None or r["t_end"] >= t_freeze]
    ended = [r for r in in_flight if r.get("t_end") is not None and r["t_end"] <= t_window_end]
    for r in in_flight:
        if r.get("t_end") is None or r["t_end"] > t_window_end:
            r["outcome"] = "hung"  # still open when the probe's window closed
    ends = [r["t_end"] - t_freeze for r in ended]
    succ = [r for r in news if r["outcome"] == "done"]
    first_ok = min((r["t_end"] - t_freeze for r in succ), default=None)
    rows = [[o, n] for o, n in counts(in_flight).items()]
    table(f"freeze: SIGSTOP {target['stage'] or 'stage'} (pid {target['pid']}) with {len(in_flight)} of "
          f"{a.freeze_streams} streams in flight; window {a.freeze_timeout_s} s", ["in-flight outcome", "streams"], rows)
    print(f"in-flight streams ended after the freeze: {len(ended)}, s: min {pct(ends, 0)} p50 {pct(ends, 50)} "
          f"max {pct(ends, 100)}; hung at the window's end: {len(in_flight) - len(ended)}")
    table("freeze: /health after the freeze", ["from s", "to s", "state"],
          [[h["from_s"], h.get("to_s"), h["state"]] for h in health])
    print(f"new requests: {len(news)} finished ({json.dumps(counts(news))}), {k} sent; first success after the "
          f"freeze: {'none within the window' if first_ok is None else f'{first_ok:.3f} s'}; frozen stage still "
          f"alive at the window's end: {stage_alive}; "
          + (f"after SIGCONT a request succeeded in: {recovered_s} s; " if stage_alive else "")
          + f"streams then: {json.dumps(after_resume)}")
    return {"params": {"cluster": a.cluster, "streams": a.freeze_streams, "max_tokens": a.freeze_max_tokens,
                       "timeout_s": a.freeze_timeout_s, "delay_s": a.freeze_delay_s, "stage_index": a.freeze_stage,
                       "warmup_requests": a.freeze_warmup_requests, "warmup_tokens": a.freeze_warmup_tokens},
            "server": srv.args, "server_exit": {"code": rc, "seconds": round(exit_s, 3), "killed": killed},
            "warmup_outcomes": counts(warmup), "frozen_stage": target, "stages_before": stages, "stages_at_window_end": stages_after,
            "frozen_stage_alive_at_window_end": stage_alive,
            "streams_open_at_freeze": sum(1 for x in at_freeze if x["open"]),
            "tokens_at_freeze": [x["tokens"] for x in at_freeze], "stream_outcomes_after_resume": after_resume,
            "in_flight_outcomes": counts(in_flight), "in_flight_end_s": {"count": len(ended), "min": pct(ends, 0),
                                                                         "p50": pct(ends, 50), "max": pct(ends, 100)},
            "hung_at_window_end": len(in_flight) - len(ended), "health": health,
            "new_requests_sent": k, "new_request_outcomes": counts(news), "first_success_after_freeze_s": first_ok,
            "recovered_after_sigcont_s": recovered_s,
            "streams": relative(snapshot, t_freeze), "new_requests": relative(news, t_freeze)}


# ---------------------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--probe", action="append", choices=PROBES + ("all",),
                   help="probe to run (repeat for several); all by default")
    p.add_argument("--llmpq", help="llmpq.dll (or apphost) to run; default: the newest of this repository's "
                                   "Release and Debug builds")
    p.add_argument("--out", help="folder for the JSON results and serve logs; default eng/probes/out/<UTC time>")
    p.add_argument("--model", help="GGUF to serve; default: one made with make-model into --out")
    p.add_argument("--make-model-args", default="--layers 8 --embd 256", help="arguments of llmpq make-model")
    p.add_argument("--serve-arg", action="append", metavar="ARG",
                   help="extra argument for every `llmpq serve` (repeat; e.g. --serve-arg=--threads --serve-arg=2)")
    p.add_argument("--max-tokens", type=int, default=8, help="max_tokens of concurrent and soak requests")
    p.add_argument("--request-timeout-s", type=float, default=300, help="client timeout of one request")
    p.add_argument("--start-timeout-s", type=float, default=120, help="time serve gets to report healthy")
    p.add_argument("--seed", type=int, default=1, help="seed of the soak's arrivals")
    g = p.add_argument_group("concurrent")
    g.add_argument("--concurrent", type=int, default=500, help="requests at once, per phase (streaming, then not)")
    g = p.add_argument_group("soak")
    g.add_argument("--soak-rate", type=float, default=20, help="mean requests per second (Poisson arrivals)")
    g.add_argument("--soak-seconds", type=float, default=300)
    g.add_argument("--soak-bucket-s", type=float, default=60, help="width of the report's latency buckets")
    g.add_argument("--soak-stream", action="store_true", help="streaming requests (default: non-streaming)")
    g.add_argument("--soak-max-inflight", type=int, default=1000, help="client's cap on requests open at once")
    g = p.add_argument_group("stop")
    g.add_argument("--stop-runs", type=int, default=10)
    g.add_argument("--stop-streams", type=int, default=20)
    g.add_argument("--stop-max-tokens", type=int, default=512, help="long enough to be decoding at SIGTERM")
    g.add_argument("--stop-shutdown-timeout-s", type=int, help="serve's --shutdown-timeout-s (default: serve's)")
    g.add_argument("--stop-parallel", type=int, help="serve's --parallel (default: serve's; streams past it queue)")
    g.add_argument("--stop-quiet-s", type=float, default=0.5,
                   help="SIGTERM once no stream got its first token for this long (the rest are queued)")
    g.add_argument("--stop-first-token-timeout-s", type=float, default=60)
    g.add_argument("--stop-exit-grace-s", type=float, default=30,
                   help="past the shutdown timeout, time to exit before the probe SIGKILLs serve")
    g = p.add_argument_group("big")
    g.add_argument("--big-count", type=int, default=10)
    g.add_argument("--big-mb", type=int, default=10, help="body size in MiB")
    g.add_argument("--big-max-request-bytes", type=int,
                   help="serve's --max-request-bytes (default: serve's); raise it to probe the context check")
    g.add_argument("--big-settle-s", type=float, default=5, help="wait before the last RSS reading")
    g = p.add_argument_group("freeze")
    g.add_argument("--cluster", default=str(REPO / "docs/clusters/local-cpu-3stage.json"))
    g.add_argument("--pipeline-start-timeout-s", type=float, default=300, help="plan, quantize and start stages")
    g.add_argument("--freeze-streams", type=int, default=20)
    g.add_argument("--freeze-max-tokens", type=int, default=256)
    g.add_argument("--freeze-stage", type=int, default=1,
                   help="index of the stage server to stop, in stage order (stage0, stage1, ...; 1 is the middle one)")
    g.add_argument("--freeze-warmup-requests", type=int, default=2,
                   help="requests served one after another before the streams (0: none)")
    g.add_argument("--freeze-warmup-tokens", type=int, default=16, help="max_tokens of each warm-up request")
    g.add_argument("--freeze-delay-s", type=float, default=2, help="from the first token to the SIGSTOP")
    g.add_argument("--freeze-timeout-s", type=float, default=120,
                   help="window after the SIGSTOP: in-flight requests still open then count as hung")
    g.add_argument("--freeze-request-interval-s", type=float, default=1, help="new request every this often")
    g.add_argument("--freeze-max-pending", type=int, default=200, help="cap on new requests open at once")
    g.add_argument("--freeze-recovery-timeout-s", type=float, default=120,
                   help="after the window: SIGCONT, then time a request gets to succeed")
    a = p.parse_args(argv)
    a.probe = list(PROBES) if not a.probe or "all" in a.probe else list(dict.fromkeys(a.probe))
    return a


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    become_subreaper()
    threading.stack_size(512 * 1024)

    def on_signal(signum, _frame):
        INTERRUPTED.set()
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    failed = []
    try:
        cfg = Config(a)
        print(f"llmpq: {' '.join(cfg.llmpq)}\nresults: {cfg.out}")
        cfg.make_model()
        built = datetime.fromtimestamp(Path(cfg.llmpq[-1]).stat().st_mtime, timezone.utc).isoformat()
        summary = {"started": datetime.now(timezone.utc).isoformat(), "llmpq": cfg.llmpq, "llmpq_built": built,
                   "model": str(cfg.model),
                   "argv": argv, "probes": {}}
        for name in a.probe:
            t = now()
            try:
                result = globals()[f"probe_{name}"](cfg)
                result["probe_seconds"] = round(now() - t, 1)
                path = write(cfg, name, {"probe": name, **result})
                summary["probes"][name] = {"ok": True, "seconds": result["probe_seconds"], "json": str(path)}
                print(f"[{name}: {result['probe_seconds']} s, {path}]")
            except Exception as e:  # noqa: BLE001 - report, clean up, go on with the next probe
                failed.append(name)
                summary["probes"][name] = {"ok": False, "error": repr(e)}
                print(f"\n== {name}: FAILED: {e!r}", file=sys.stderr)
            finally:
                PROCS.cleanup()  # nothing of one probe outlives it
        (cfg.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        PROCS.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
