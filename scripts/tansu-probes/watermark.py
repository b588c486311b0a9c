"""Probe: tansu's ListOffsets(latest) against what is really in a partition.

N idempotent producers write M records each to partition 0 of a fresh
one-partition topic at once. Then: the high watermark as ListOffsets reports
it (get_watermark_offsets, cached=False), the records read from offset 0
until the broker reports the partition's end (enable.partition.eof), and the
high watermark the Fetch responses carried (get_watermark_offsets cached).
"""
import sys, threading, time, uuid
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

broker = sys.argv[1]
producers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
per = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
idem = (sys.argv[4] if len(sys.argv) > 4 else "true")
topic = "probe-" + uuid.uuid4().hex[:8]
admin = AdminClient({"bootstrap.servers": broker})
for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
    f.result(10)

acked = [0] * producers
errors = {}
lock = threading.Lock()

def produce(i):
    p = Producer({"bootstrap.servers": broker, "enable.idempotence": idem, "linger.ms": 2})
    def cb(err, msg):
        with lock:
            if err is None:
                acked[i] += 1
            else:
                errors[err.name()] = errors.get(err.name(), 0) + 1
    for n in range(per):
        while True:
            try:
                p.produce(topic, key=b"k", value=f"{i}-{n}".encode(), partition=0, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(60)

threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
[t.start() for t in threads]
[t.join() for t in threads]

c = Consumer({"bootstrap.servers": broker, "group.id": "probe", "enable.partition.eof": True,
              "isolation.level": "read_uncommitted", "enable.auto.commit": False})
low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
c.assign([TopicPartition(topic, 0, 0)])
values, offsets = [], []
deadline = time.time() + 60
while time.time() < deadline:
    m = c.poll(1)
    if m is None:
        continue
    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            eof_at = m.offset()
            break
        print("consume error", m.error()); continue
    values.append(m.value()); offsets.append(m.offset())
fetched_low, fetched_high = c.get_watermark_offsets(TopicPartition(topic, 0), cached=True)
print(f"topic={topic} producers={producers}x{per} idempotence={idem}")
print(f"acked={sum(acked)} delivery_errors={errors}")
print(f"ListOffsets: low={low} high={high}")
print(f"read to EOF: records={len(values)} distinct={len(set(values))} eof_at={eof_at} "
      f"max_offset={max(offsets) if offsets else None} distinct_offsets={len(set(offsets))}")
print(f"high watermark carried by Fetch responses: {fetched_high}")
c.close()
