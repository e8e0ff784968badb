#!/usr/bin/env python3
"""The Python peer: the H2 job (validate -> enrich -> route on the Olist
events) written the way a user would otherwise write it, as a
confluent-kafka consumer loop with the same guarantees as sluice:
an idempotent acks=all producer, and each input's offset stored only once
its output is acknowledged, in order per partition (librdkafka commits the
stored offsets every second).

Prints one JSON line, the same measurement the Rust variants print: the
window runs from the first consumed event to the last completed one.
"""

import argparse
import collections
import csv
import json
import resource
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

EVENT_TYPES = ("OrderPlaced", "PaymentApproved", "ShipmentDispatched", "ShipmentDelivered", "OrderCanceled")
ROUTES = {
    "OrderPlaced": "orders.placed",
    "PaymentApproved": "payments.approved",
    "ShipmentDispatched": "shipments.dispatched",
    "ShipmentDelivered": "shipments.delivered",
    "OrderCanceled": "orders.canceled",
}
REQUIRED = ("eventId", "eventType", "order_id")


def table(path, key):
    with open(path, newline="", encoding="utf-8") as f:
        return {row[key]: row for row in csv.DictReader(f)}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Watermark:
    """Offsets of one partition in consumption order; the stored offset
    moves only over a contiguous prefix of acknowledged ones."""

    def __init__(self):
        self.pending = collections.deque()
        self.done = set()

    def add(self, offset):
        self.pending.append(offset)

    def ack(self, offset):
        self.done.add(offset)
        nxt = None
        while self.pending and self.pending[0] in self.done:
            first = self.pending.popleft()
            self.done.discard(first)
            nxt = first + 1
        return nxt


def process(value, customers, products, categories):
    """Returns (topic suffix or None to drop, output bytes, error or None)."""
    try:
        event = json.loads(value)
    except (ValueError, TypeError) as e:
        return "orders.dlq", value, f"not JSON: {e}"
    if not isinstance(event, dict):
        return "orders.dlq", value, "not a JSON object"
    for field in REQUIRED:
        if event.get(field) in (None, ""):
            return "orders.dlq", value, f"missing required field {field}"
    if event["eventType"] not in EVENT_TYPES:
        return None, None, None
    customer = customers.get(event.get("customer_id"))
    if customer is not None:
        event["customer_state"] = customer["customer_state"]
        event["customer_city"] = customer["customer_city"]
    for item in event.get("items") or []:
        product = products.get(item.get("product_id"))
        if product is not None:
            item["product_category_name"] = product["product_category_name"]
        category = categories.get(item.get("product_category_name"))
        if category is not None:
            item["product_category"] = category["product_category_name_english"]
    return ROUTES[event["eventType"]], json.dumps(event, separators=(",", ":")).encode(), None


def main():
    parser = argparse.ArgumentParser()
    for arg in ("--bootstrap", "--input", "--prefix", "--group", "--data"):
        parser.add_argument(arg, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    customers = table(f"{args.data}/olist_customers.csv", "customer_id")
    products = table(f"{args.data}/olist_products.csv", "product_id")
    categories = table(f"{args.data}/product_category_name_translation.csv", "product_category_name")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "partition.assignment.strategy": "cooperative-sticky",
    })
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 5,
        "compression.type": "lz4",
    })
    consumer.subscribe([args.input])

    marks = collections.defaultdict(Watermark)
    state = {"completed": 0, "failed": None, "to_store": {}}
    window = None

    def settle(partition, offset):
        nxt = marks[partition].ack(offset)
        state["completed"] += 1
        if nxt is not None:
            state["to_store"][partition] = nxt

    def on_delivery(partition, offset):
        def callback(err, _msg):
            if err is not None:
                state["failed"] = str(err)
            else:
                settle(partition, offset)
        return callback

    deadline = time.monotonic() + 300
    while state["completed"] < args.count:
        if time.monotonic() > deadline:
            sys.exit(f"peer timed out after {state['completed']} of {args.count}")
        idle = all(not m.pending for m in marks.values())
        messages = consumer.consume(num_messages=1000, timeout=0.1 if idle else 0)
        if window is None and messages:
            window = (time.monotonic(), cpu_seconds())
        for message in messages:
            if message.error():
                raise KafkaException(message.error())
            partition, offset = message.partition(), message.offset()
            marks[partition].add(offset)
            suffix, out, error = process(message.value(), customers, products, categories)
            if suffix is None:
                settle(partition, offset)
                continue
            headers = list(message.headers() or [])
            if error is not None:
                headers.append(("error", error.encode()))
            while True:
                try:
                    producer.produce(args.prefix + suffix, out, message.key(), headers=headers,
                                     timestamp=message.timestamp()[1], on_delivery=on_delivery(partition, offset))
                    break
                except BufferError:
                    producer.poll(0.005)
        producer.poll(0.001 if not messages else 0)
        if state["failed"]:
            sys.exit(f"a delivery failed: {state['failed']}")
        if state["to_store"]:
            consumer.store_offsets(offsets=[TopicPartition(args.input, p, o) for p, o in state["to_store"].items()])
            state["to_store"].clear()
    started, cpu = window
    result = {
        "events": state["completed"],
        "secs": time.monotonic() - started,
        "cpu_secs": cpu_seconds() - cpu,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    producer.flush(10)
    consumer.commit(asynchronous=False)
    consumer.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
