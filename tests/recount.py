#!/usr/bin/env python3
"""Reads a whole topic with a Kafka client that is not dualwrite's.

The independent half of tests/crosscheck.rs: confluent-kafka (Confluent's
Python client, its own librdkafka build from PyPI) reads every partition of
TOPIC from offset 0 until the broker reports the partition's end
(`enable.partition.eof`: the fetch offset reached the high watermark of a
Fetch response), then prints one JSON line per record and a last line with
each partition's end offset:

    {"partition": 0, "offset": 0, "key": "3", "value": {...}}
    ...
    {"end": {"0": 17, "1": 12, "2": 20}}

Offset 0, not "beginning": asking for the beginning makes the client send
ListOffsets(earliest), and tansu 0.6.0's memory engine answers that with the
batch written first in time rather than the lowest offset (see the README's
"dualwrite found it"). Reading from 0 asks the broker nothing but Fetch.

Exit status 0 when every partition reported its end within --timeout
seconds; 2, with the reason on stderr, otherwise. Usage:

    python3 tests/recount.py --broker 127.0.0.1:9092 --topic dw_naive_1a2b3c4d
"""
import argparse
import json
import sys
import time

try:
    from confluent_kafka import Consumer, KafkaError, TopicPartition
except ImportError:
    sys.exit("recount.py needs confluent-kafka from PyPI: run `make setup-tests` "
             "(or `python3 -m pip install confluent-kafka`)")


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--broker", required=True)
    args.add_argument("--topic", required=True)
    args.add_argument("--timeout", type=float, default=60.0)
    a = args.parse_args()

    consumer = Consumer({
        "bootstrap.servers": a.broker,
        "group.id": "dualwrite-recount",  # required by the client; never joined
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        # dualwrite writes no transactions: count everything written.
        "isolation.level": "read_uncommitted",
        "socket.connection.setup.timeout.ms": 10000,
        "log_level": 3,
    })
    deadline = time.monotonic() + a.timeout
    metadata = consumer.list_topics(a.topic, timeout=min(10.0, a.timeout))
    topic = metadata.topics.get(a.topic)
    if topic is None or topic.error is not None:
        sys.exit(f"topic {a.topic} not found on {a.broker}: {topic.error if topic else 'missing'}")
    partitions = sorted(topic.partitions)
    consumer.assign([TopicPartition(a.topic, p, 0) for p in partitions])

    end = {}
    records = []
    while len(end) < len(partitions):
        left = deadline - time.monotonic()
        if left <= 0:
            consumer.close()
            print(f"read {len(records)} records; partitions {sorted(set(partitions) - set(end))} "
                  f"did not report their end within {a.timeout} s", file=sys.stderr)
            sys.exit(2)
        message = consumer.poll(min(1.0, left))
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                end[message.partition()] = message.offset()
                continue
            print(f"consume error (retrying): {message.error()}", file=sys.stderr)
            continue
        value = message.value()
        try:
            value = json.loads(value) if value is not None else None
        except ValueError:
            value = {"undecodable": value.decode("utf-8", "replace")}
        key = message.key().decode("utf-8", "replace") if message.key() is not None else None
        records.append({"partition": message.partition(), "offset": message.offset(), "key": key, "value": value})
    consumer.close()
    for record in records:
        print(json.dumps(record))
    print(json.dumps({"end": {str(p): o for p, o in sorted(end.items())}}))


if __name__ == "__main__":
    main()
