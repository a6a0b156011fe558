"""A real MQTT client (Eclipse paho-mqtt 2.x) against a live chaoslab: QoS 0/1/2, retained messages, a
persistent session, a last will, and (MQTT 5) user properties, session and message expiry.

Usage: python paho_client.py PORT 311|5. Prints one JSON object of what happened; the Rust test
(tests/suite/paho.rs) judges it. Exits non-zero only when the client itself cannot run.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PORT = int(sys.argv[1])
V5 = sys.argv[2] == "5"
TAG = "v5" if V5 else "v311"
BASE = f"paho/{TAG}"
WAIT = 10.0


class Session:
    """One paho client with what it received and what its CONNACK / SUBACK said."""

    def __init__(self, client_id, clean=True, will=None):
        self.client_id = client_id
        self.clean = clean
        self.will = will
        self.messages = []
        self.connack = None
        self.granted = None
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.lock = threading.Lock()
        self.client = self._new()

    def _new(self):
        if V5:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        else:
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=self.clean,
            )
        if self.will:
            c.will_set(*self.will)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = {"code": int(reason_code.value), "session_present": bool(flags.session_present)}
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.granted = [int(rc.value) for rc in reason_codes]
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        props = {}
        if V5 and msg.properties is not None:
            props = {
                "user": [list(p) for p in getattr(msg.properties, "UserProperty", [])],
                "expiry": getattr(msg.properties, "MessageExpiryInterval", None),
            }
        with self.lock:
            self.messages.append(
                {"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos, "retain": bool(msg.retain), **props}
            )

    def connect(self):
        self.connected.clear()
        if V5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if self.clean else 300
            self.client.connect("127.0.0.1", PORT, keepalive=30, clean_start=self.clean, properties=props)
        else:
            self.client.connect("127.0.0.1", PORT, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(WAIT):
            raise SystemExit(f"{self.client_id}: no CONNACK in {WAIT} s")
        return self.connack

    def subscribe(self, topic, qos):
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        if not self.subscribed.wait(WAIT):
            raise SystemExit(f"{self.client_id}: no SUBACK in {WAIT} s")
        return self.granted

    def publish(self, topic, payload, qos, retain=False, user=None, expiry=None):
        props = None
        if V5 and (user or expiry):
            props = Properties(PacketTypes.PUBLISH)
            if user:
                props.UserProperty = user
            if expiry:
                props.MessageExpiryInterval = expiry
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            info.wait_for_publish(WAIT)
        return info.rc

    def wait_for(self, count):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


result = {}

# A subscriber with a persistent session, at QoS 2.
sub = Session(f"paho-sub-{TAG}", clean=False)
result["sub_connack"] = sub.connect()
result["granted"] = sub.subscribe(f"{BASE}/#", 2)

# A publisher with a last will.
pub = Session(f"paho-pub-{TAG}", will=(f"{BASE}/will", "gone", 1, False))
result["pub_connack"] = pub.connect()
user = [("origin", "paho"), ("run", "chaoslab")]
for qos in (0, 1, 2):
    pub.publish(f"{BASE}/q{qos}", f"m{qos}", qos, user=user, expiry=600 if qos else None)
result["live"] = sub.wait_for(3)

# A retained message, for a subscriber that comes later.
pub.publish(f"{BASE}/retained", "kept", 1, retain=True)
late = Session(f"paho-late-{TAG}")
late.connect()
late.subscribe(f"{BASE}/retained", 1)
result["retained"] = late.wait_for(1)
late.close()

# The persistent session keeps its subscription and queues QoS 1 while the subscriber is away.
sub.wait_for(4)  # the retained message, live
sub.close()
with sub.lock:
    sub.messages.clear()
pub.publish(f"{BASE}/away", "while-away", 1)
sub.client = sub._new()
result["resumed_connack"] = sub.connect()
result["queued"] = sub.wait_for(1)

# The publisher vanishes without DISCONNECT: its will goes out.
pub.client.loop_stop()
pub.client.socket().close()
result["after_will"] = sub.wait_for(2)
sub.close()

print(json.dumps(result))
