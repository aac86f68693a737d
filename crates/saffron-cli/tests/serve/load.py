"""A load test of a running `saffron serve`: CLIENTS threads x REQUESTS
requests each, a mix of streamed and plain ones, one in five streamed ones
dropped after its first chunk. Fails on any crash, any 5xx, any answer that
is not complete, or resident memory after the run more than 10% above what
it was after the first 100 requests.

usage: load.py PORT MODEL API_KEY SERVER_PID [CLIENTS] [REQUESTS]
"""

import http.client
import json
import sys
import threading

port, model, key, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
clients = int(sys.argv[5]) if len(sys.argv) > 5 else 64
per_client = int(sys.argv[6]) if len(sys.argv) > 6 else 20
headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
prompts = ["Say hi.", "Name a fruit.", "How do I pick a lock?", "Count to three.", "What is rain?"]

lock = threading.Lock()
done = 0
failures = []
rss_at_100 = None


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def one(client, i):
    stream = (client + i) % 2 == 0
    cancel = stream and (client * per_client + i) % 5 == 0
    strategy = {"strategy": "saffron", "width": 2} if i % 4 == 0 else {"strategy": "sample"}
    body = {"model": model, "messages": [{"role": "user", "content": prompts[(client + i) % len(prompts)]}],
            "max_tokens": 4, "seed": client * 1000 + i, "stream": stream, "saffron": strategy}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    r = conn.getresponse()
    if r.status != 200:
        return f"HTTP {r.status}: {r.read()[:300]!r}"
    if not stream:
        v = json.loads(r.read())
        if v["choices"][0]["finish_reason"] not in ("stop", "length") or v["usage"]["completion_tokens"] < 1:
            return f"incomplete answer: {v}"
        conn.close()
        return None
    finished, ended = False, False
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if cancel:
            conn.close()  # the client goes away mid-stream
            return None
        if data == "[DONE]":
            ended = True
            break
        chunk = json.loads(data)
        if "error" in chunk:
            return f"error event: {chunk}"
        if chunk["choices"] and chunk["choices"][0].get("finish_reason"):
            finished = True
    conn.close()
    return None if finished and ended else "a stream ended without finish_reason and [DONE]"


def client_loop(client):
    global done, rss_at_100
    for i in range(per_client):
        try:
            failure = one(client, i)
        except Exception as e:  # a crash or a dropped connection
            failure = f"{type(e).__name__}: {e}"
        with lock:
            done += 1
            if failure:
                failures.append(failure)
            if done == 100:
                rss_at_100 = rss_kib()


threads = [threading.Thread(target=client_loop, args=(c,)) for c in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
rss_end = rss_kib()
print(f"load: {done} requests, {len(failures)} failures, RSS {rss_at_100} KiB after 100, {rss_end} KiB at the end")
for f in failures[:10]:
    print("  ", f)
if failures:
    sys.exit(1)
if rss_end > rss_at_100 * 1.10:
    sys.exit(f"resident memory grew by {100 * (rss_end / rss_at_100 - 1):.1f}% after the first 100 requests")
