"""By-hand H1, for the pause-cycle figures in BENCHMARKS.md.

Produces N records of 100 B to a new one-partition topic on Kafka at 127.0.0.1:19092, runs `sluice run` with the
`passthrough` plugin on it, and prints msg/s from the output topic's high watermark. Needs confluent-kafka (the
venv scripts/bench.sh makes) and a passthrough.wasm in PLUGINS (default: the build's).

    /var/cache/sluice/bench-venv/bin/python bench/queue_probe.py SLUICE_BINARY [N] [EXTRA_TOML]
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
B = "127.0.0.1:19092"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
binary = sys.argv[1]
extra = sys.argv[3] if len(sys.argv) > 3 else ""
tag = uuid.uuid4().hex[:8]
PLUGINS = os.environ.get("PLUGINS", "/var/cache/sluice/target/wasm-plugins/wasm32-wasip2/release")
work = tempfile.mkdtemp(prefix="queue-probe-")
inp, out, dlq = f"h1-{tag}-in", f"h1-{tag}-out", f"h1-{tag}-dlq"
a = AdminClient({"bootstrap.servers": B})
for f in a.create_topics([NewTopic(t, 1, 1) for t in (inp, out, dlq)]).values(): f.result()
p = Producer({"bootstrap.servers": B, "linger.ms": 20})
v = b"x" * 100
for i in range(N):
    while True:
        try: p.produce(inp, v, key=str(i % 100).encode()); break
        except BufferError: p.poll(0.1)
p.flush()
cfg = f"""[broker]
bootstrap = "{B}"
group = "h1-{tag}"
[plugins]
dir = "{PLUGINS}"
[admin]
listen = "127.0.0.1:0"
[reload]
watch = false
{extra}
[[routes]]
name = "h1"
inputs = ["{inp}"]
outputs = ["{out}"]
dlq = "{dlq}"
[[routes.chain]]
plugin = "passthrough"
"""
config = os.path.join(work, "sluice.toml")
open(config, "w").write(cfg)
proc = subprocess.Popen([binary, "run", "--config", config], stderr=open(os.path.join(work, "sluice.log"), "w"))
c = Consumer({"bootstrap.servers": B, "group.id": "h1-probe"})
first = None
while True:
    lo, hi = c.get_watermark_offsets(TopicPartition(out, 0), timeout=5)
    now = time.monotonic()
    if hi > 0 and first is None: first, first_n = now, hi
    if hi >= N: break
    time.sleep(0.02)
proc.terminate(); proc.wait()
print(f"{N - first_n} records in {now - first:.2f}s: {(N - first_n) / (now - first):.0f} msg/s {extra}")
