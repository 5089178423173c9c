#!/usr/bin/env python3
"""Load generator for scripts/bench-service (standard library only).

  bench-service-load.py capacity ADDR IMAGE SOURCE_TYPE UPLOADS [--threads T]
      UPLOADS uploads sent at once from T threads; times until every job is COMPLETE.
  bench-service-load.py steady ADDR IMAGE SOURCE_TYPE RATE (--seconds S | --uploads N) [--pid P]
      uploads at a fixed RATE per second (open loop); each one timed from sending the request to
      the first status poll answering 200 COMPLETE (each job polled every 5 ms). With --pid, the
      server's VmRSS is printed to stderr every --rss-every uploads.

Each mode prints one JSON object on stdout; progress goes to stderr. Every thread keeps one
keep-alive HTTP connection. Exit code 1 if an upload was refused or a job did not end COMPLETE.
"""
import argparse
import http.client
import json
import math
import os
import queue
import statistics
import sys
import threading
import time

POLL_INTERVAL = 0.005


class Client:
    """One keep-alive connection, reopened after a connection error."""

    def __init__(self, addr):
        self.host, _, port = addr.rpartition(":")
        self.port = int(port)
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.conn.close()
                    self.conn = None
                return resp.status, data
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


class Upload:
    def __init__(self, image_path, source_type):
        with open(image_path, "rb") as f:
            self.image = f.read()
        self.source_type = source_type
        self.boundary = "----bench-service-" + os.urandom(12).hex()
        name = os.path.basename(image_path)
        ctype = {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(
            name.rsplit(".", 1)[-1].lower(), "image/jpeg")
        self.head = (f"--{self.boundary}\r\n"
                     f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n").encode()

    def body(self, source_id):
        b = self.boundary
        fields = ""
        for key, value in (("sourceType", self.source_type), ("sourceId", source_id)):
            fields += f'--{b}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        return fields.encode() + self.head + self.image + f"\r\n--{b}--\r\n".encode()

    def send(self, client, source_id):
        """POST the upload; returns the job id (raises on anything but 202)."""
        body = self.body(source_id)
        status, data = client.request("POST", "/image-pipeline/upload", body, {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(len(body))})
        if status != 202:
            raise RuntimeError(f"upload {source_id}: HTTP {status}: {data[:200]!r}")
        return json.loads(data)["jobId"]


def poll_status(client, job_id):
    """(http status, body) of the status route; raises if the job ended other than COMPLETE."""
    status, data = client.request("GET", f"/image-pipeline/status/{job_id}")
    if status not in (200, 202):
        raise RuntimeError(f"job {job_id}: HTTP {status}: {data[:300]!r}")
    return status


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pct(values, p):
    s = sorted(values)
    if not s:
        return None
    k = max(0, math.ceil(p / 100 * len(s)) - 1)
    return s[k]


def capacity(args):
    upload = Upload(args.image, args.source_type)
    n, threads = args.uploads, min(args.threads, args.uploads)
    errors, complete, lock = [], [], threading.Lock()
    start_gate = threading.Barrier(threads + 1)
    accepted_at, done_at = [0.0] * threads, [0.0] * threads

    def run(t):
        client = Client(args.addr)
        mine = range(t, n, threads)
        start_gate.wait()
        jobs = []
        try:
            for i in mine:
                jobs.append(upload.send(client, f"bench-cap-{i}"))
            accepted_at[t] = time.monotonic()
            # Poll this thread's jobs in order, sleeping only while the oldest is unfinished.
            k = 0
            while k < len(jobs):
                if poll_status(client, jobs[k]) == 200:
                    k += 1
                else:
                    time.sleep(POLL_INTERVAL)
            done_at[t] = time.monotonic()
            with lock:
                complete.extend(jobs)
        except Exception as e:  # noqa: BLE001 - reported in the JSON
            with lock:
                errors.append(str(e))

    workers = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    start_gate.wait()
    t0 = time.monotonic()
    for w in workers:
        w.join()
    elapsed = max(done_at) - t0
    out = {"uploads": n, "threads": threads, "complete": len(complete), "errors": errors[:5],
           "accepted_s": round(max(accepted_at) - t0, 3), "all_complete_s": round(elapsed, 3),
           "uploads_per_s": round(len(complete) / elapsed, 2) if elapsed > 0 else None,
           "complete_job_id": complete[0] if complete else None}
    print(json.dumps(out))
    return 1 if errors else 0


def steady(args):
    upload = Upload(args.image, args.source_type)
    rate = args.rate
    total = args.uploads if args.uploads else max(1, int(round(rate * args.seconds)))
    window = total / rate
    tasks = queue.Queue()
    lock = threading.Lock()
    latencies, lags, errors = [], [], []
    state = {"in_flight": 0, "sent": 0, "done": 0}
    rss_samples = []  # (uploads done, RSS MB)
    depth = []  # (seconds since start, jobs sent and not yet seen COMPLETE)
    stop_sampler = threading.Event()

    def worker():
        client = Client(args.addr)
        while True:
            item = tasks.get()
            if item is None:
                return
            i, due = item
            t_send = time.monotonic()
            with lock:
                lags.append(t_send - due)
                state["in_flight"] += 1
                state["sent"] += 1
            try:
                job = upload.send(client, f"bench-{args.tag}-{i}")
                while poll_status(client, job) != 200:
                    time.sleep(POLL_INTERVAL)
                t_done = time.monotonic()
                with lock:
                    latencies.append(t_done - t_send)
            except Exception as e:  # noqa: BLE001 - reported in the JSON
                with lock:
                    errors.append(str(e))
            finally:
                with lock:
                    state["in_flight"] -= 1
                    state["done"] += 1
                    done = state["done"]
                if args.pid and (done % args.rss_every == 0 or done == total):
                    kb = rss_kb(args.pid)
                    with lock:
                        rss_samples.append((done, round(kb / 1024, 1) if kb else None))
                    mb = f"{kb / 1024:.1f} MB" if kb else "?"
                    print(f"  {done:>6} uploads: RSS {mb}", file=sys.stderr, flush=True)

    def sampler(t0):
        while not stop_sampler.is_set():
            with lock:
                depth.append((time.monotonic() - t0, state["in_flight"]))
            stop_sampler.wait(0.1)

    # Enough threads to keep the schedule even if each upload takes a few seconds.
    nthreads = min(total, max(16, int(rate * 4) + 4), 256)
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(nthreads)]
    for w in workers:
        w.start()
    rss_start = rss_kb(args.pid) if args.pid else None
    if args.pid and rss_start:
        rss_samples.append((0, round(rss_start / 1024, 1)))
        print(f"  {0:>6} uploads: RSS {rss_start / 1024:.1f} MB", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    sam = threading.Thread(target=sampler, args=(t0,), daemon=True)
    sam.start()
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        tasks.put((i, due))
    # Queue depth at the end of the sending window, before draining.
    end_window = time.monotonic()
    time.sleep(max(0.0, t0 + window - end_window))
    for _ in workers:
        tasks.put(None)
    for w in workers:
        w.join()
    drained = time.monotonic() - t0
    stop_sampler.set()
    sam.join()

    def depth_at(t):
        return min(depth, key=lambda d: abs(d[0] - t))[1] if depth else None

    def depth_mean(a, b):
        xs = [d for s, d in depth if a <= s < b]
        return round(statistics.mean(xs), 2) if xs else None

    ms = [x * 1000 for x in latencies]
    out = {
        "rate_per_s": rate, "uploads": total, "window_s": round(window, 2),
        "drained_s": round(drained, 2), "complete": len(latencies), "errors": errors[:5],
        "error_count": len(errors),
        "median_ms": round(statistics.median(ms), 1) if ms else None,
        "p99_ms": round(pct(ms, 99), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None,
        "send_lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
        "depth_mid": depth_at(window / 2), "depth_end": depth_at(window),
        "depth_mean_first_half": depth_mean(0, window / 2),
        "depth_mean_second_half": depth_mean(window / 2, window),
        "depth_max": max((d for _, d in depth), default=None),
    }
    if args.pid:
        kb = rss_kb(args.pid)
        out["rss_start_mb"] = round(rss_start / 1024, 1) if rss_start else None
        out["rss_end_mb"] = round(kb / 1024, 1) if kb else None
        out["rss_samples"] = sorted(rss_samples)
    print(json.dumps(out))
    return 1 if errors else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("capacity", "steady"):
        s = sub.add_parser(name)
        s.add_argument("addr", help="HOST:PORT of the service")
        s.add_argument("image")
        s.add_argument("source_type")
    c = sub.choices["capacity"]
    c.add_argument("uploads", type=int)
    c.add_argument("--threads", type=int, default=6)
    s = sub.choices["steady"]
    s.add_argument("rate", type=float)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--seconds", type=float)
    g.add_argument("--uploads", type=int)
    s.add_argument("--pid", type=int, help="server pid: print its RSS every --rss-every uploads")
    s.add_argument("--rss-every", type=int, default=200)
    s.add_argument("--tag", default="steady", help="sourceId prefix")
    args = p.parse_args()
    if args.mode == "steady" and args.rate <= 0:
        p.error("rate must be positive")
    return capacity(args) if args.mode == "capacity" else steady(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
