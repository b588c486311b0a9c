"""Probe: an idempotent producer through a fault on its connection to tansu.

A tiny TCP proxy sits between the client and tansu (tansu advertises the
proxy). The producer sends one record every 20 ms; the proxy forwards, then
black-holes (or resets) every connection for a while, then forwards again.
Printed: delivery outcomes per phase, librdkafka's EOS debug lines about
epochs, and whether the client ever raised a fatal error.
"""
import asyncio, logging, socket, struct, sys, threading, time, uuid
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

upstream_port, listen_port, mode, fault_s = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
extra = dict(kv.split("=", 1) for kv in sys.argv[5:])
state = {"mode": "pass"}
conns = set()

async def pump(r, w, tag):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            while state["mode"] == "blackhole":
                await asyncio.sleep(0.01)   # hold the bytes, forward nothing
            w.write(data); await w.drain()
    except Exception:
        pass
    finally:
        try: w.close()
        except Exception: pass

async def handle(cr, cw):
    if state["mode"] == "reset":
        sock = cw.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cw.close(); return
    ur, uw = await asyncio.open_connection("127.0.0.1", upstream_port)
    conns.add(cw)
    await asyncio.gather(pump(cr, uw, "up"), pump(ur, cw, "down"))
    conns.discard(cw)

def reset_all():
    for w in list(conns):
        sock = w.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except Exception: pass
        w.close()

loop = asyncio.new_event_loop()
async def serve():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()
threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True).start()
time.sleep(0.3)

broker = f"127.0.0.1:{listen_port}"
topic = "fence-" + uuid.uuid4().hex[:8]
admin = AdminClient({"bootstrap.servers": broker})
for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
    f.result(10)

log = logging.getLogger("rdkafka"); log.setLevel(logging.DEBUG)
lines = []
class H(logging.Handler):
    def emit(self, rec):
        m = rec.getMessage()
        if any(s in m for s in ("bump", "Bump", "epoch", "PID", "DRAIN", "fatal", "FENCED", "Fenced")):
            lines.append(f"{time.time()-t0:6.2f}s {m[:220]}")
log.addHandler(H())
fatal = []
conf = {"bootstrap.servers": broker, "enable.idempotence": "true", "message.timeout.ms": 2000,
        "request.timeout.ms": 2000, "linger.ms": 2, "debug": "eos", "logger": log,
        "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
        "error_cb": lambda e: fatal.append((round(time.time()-t0, 2), e.name(), e.fatal())) if e.fatal() else None}
conf.update(extra)
p = Producer(conf)
phase = {"v": "before"}
outcomes = {}
def cb(err, msg):
    key = (phase_of_send[msg.value()], "ok" if err is None else err.name())
    outcomes[key] = outcomes.get(key, 0) + 1
phase_of_send = {}
t0 = time.time()
n = 0
while time.time() - t0 < 3 + fault_s + 8:
    t = time.time() - t0
    if t < 3: ph = "before"
    elif t < 3 + fault_s: ph = "fault"
    else: ph = "after"
    if ph == "fault" and state["mode"] == "pass":
        state["mode"] = mode
        if mode == "reset": loop.call_soon_threadsafe(reset_all)
    if ph == "after" and state["mode"] != "pass":
        state["mode"] = "pass"
    v = str(n).encode(); n += 1
    phase_of_send[v] = ph
    p.produce(topic, key=str(n % 6).encode(), value=v, on_delivery=cb)
    p.poll(0.02)
p.flush(10)
print(f"mode={mode} fault={fault_s}s extra={extra} sent={n}")
for k in sorted(outcomes):
    print("  sent", k[0], "→", k[1], outcomes[k])
print("fatal errors:", fatal or "none")
import re
bumps=[l for l in lines if "bumped epoch to" in l]
print(f"local epoch bumps: {len(bumps)}; InitProducerId requests: {sum('Acquiring ProducerId' in l for l in lines)}")
for l in bumps[:2] + bumps[-1:]:
    print("  ", l)
