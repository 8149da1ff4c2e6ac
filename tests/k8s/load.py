"""A bounded HTTP load, run inside the cluster's network namespace by the k8s
suite: `workers` clients, each sending requests one after another on a new
connection each (so every request goes through kube-proxy's rules as they are
at that moment), until `seconds` pass, `limit` requests were sent or SIGTERM
comes. Prints one JSON line: counts by status, the errors seen, and the
request count.

    python3 load.py URL --seconds 30 --workers 4 [--limit N] [--pause-ms 20]
"""

import argparse
import http.client
import json
import signal
import threading
import time
import urllib.parse
from collections import Counter


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", type=int, default=100_000)
    parser.add_argument("--pause-ms", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "") or "/"
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    statuses: Counter = Counter()
    errors: Counter = Counter()
    sent = [0]
    # SIGTERM: the workers finish the request they are in, and the counts are printed
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def worker():
        while time.monotonic() < deadline and not stop.is_set():
            with lock:
                if sent[0] >= args.limit:
                    return
                sent[0] += 1
            try:
                connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=args.timeout)
                connection.request("GET", path, headers={"Connection": "close"})
                response = connection.getresponse()
                response.read()
                with lock:
                    statuses[response.status] += 1
                connection.close()
            except Exception as error:  # noqa: BLE001 - every failure is counted
                with lock:
                    errors[f"{type(error).__name__}: {error}"[:120]] += 1
            time.sleep(args.pause_ms / 1000)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.seconds + args.timeout + 5)
    print(json.dumps({"sent": sent[0], "statuses": {str(k): v for k, v in statuses.items()},
                      "errors": dict(errors)}))


if __name__ == "__main__":
    main()
