"""The event router: what Eventarc does, on the emulators.

It pulls the storage notifications fake-gcs-server publishes and the messages of every
function topic, turns each into the CloudEvent Eventarc sends, and POSTs it to every
function triggered on that bucket or topic. Delivery is at least once: a non-2xx answer
is retried with exponential backoff, and when retries run out the message is nacked so
Pub/Sub redelivers it. ``deliveries`` > 1 sends each event that many times concurrently,
so idempotency can be tested. ``ack_deadline_seconds`` > 0 gives the subscriptions that ack
deadline and stops the client from extending it, so a message whose delivery (retries
included) outlasts it is redelivered by Pub/Sub while the first delivery still runs, as a
push subscription redelivers when a function outlives its ack deadline.

Run as ``python -m localcloud.router '<StackConfig JSON>'``.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localcloud import cloudevents, config
from localcloud.cloudevents import PUBSUB_TYPE

MAX_ATTEMPTS = 8
BASE_BACKOFF = 0.25
MAX_BACKOFF = 8.0


class Connections:
    """Keep-alive HTTP connections to the functions, one per thread and function, as
    Eventarc keeps its connections to Cloud Run open. A new TCP connection per event cost
    the router and each function's server more CPU than the fast paths behind them (issue
    17, README bench section)."""

    def __init__(self, timeout: float = 600) -> None:
        self.timeout = timeout
        self._local = threading.local()

    def post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """POST and return the status; raises OSError when no answer came back."""
        parts = urllib.parse.urlsplit(url)
        open_ = self._local.__dict__.setdefault("open", {})
        while True:
            conn = open_.pop(parts.netloc, None)
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
            try:
                conn.request("POST", parts.path or "/", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                if reused:
                    continue  # the server closed an idle kept-alive connection: a new one
                raise
            if response.will_close:
                conn.close()
            else:
                open_[parts.netloc] = conn
            return response.status


def log(severity: str, message: str, **fields: Any) -> None:
    print(json.dumps({"severity": severity, "message": message, "component": "router", **fields}),
          flush=True)


class Router:
    def __init__(self, cfg: dict[str, Any], max_attempts: int = MAX_ATTEMPTS,
                 base_backoff: float = BASE_BACKOFF) -> None:
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.project = cfg["project"]
        self.deliveries = int(cfg.get("deliveries", 1))
        self.ack_deadline = int(cfg.get("ack_deadline_seconds", 0))
        urls = {name: f"http://127.0.0.1:{port}" for name, port in cfg["function_ports"].items()}
        self.bucket_targets: dict[str, list[tuple[str, str, str]]] = {}
        self.topic_targets: dict[str, list[tuple[str, str, str]]] = {}
        for fn in config.function_table():
            trigger = fn["trigger"]
            if trigger["type"] == "storage":
                bucket = cfg["buckets"][trigger["bucket"]]
                event_type = f"google.cloud.storage.object.v1.{trigger['event']}"
                self.bucket_targets.setdefault(bucket, []).append(
                    (fn["name"], urls[fn["name"]], event_type))
            elif trigger["type"] == "pubsub":
                self.topic_targets.setdefault(trigger["topic"], []).append(
                    (fn["name"], urls[fn["name"]], PUBSUB_TYPE))
        self.stats = {"delivered": 0, "retried": 0, "failed": 0, "ignored": 0}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=64)
        self.connections = Connections()

    def count(self, key: str) -> None:
        with self.lock:
            self.stats[key] += 1

    def post(self, function: str, url: str, headers: dict[str, str], body: bytes) -> bool:
        """Deliver once, retrying non-2xx with backoff; True when a 2xx came back."""
        for attempt in range(self.max_attempts):
            try:
                status = self.connections.post(url, headers, body)
            except (http.client.HTTPException, OSError):
                status = 0
            if 200 <= status < 300:
                self.count("delivered")
                log("DEBUG", "delivered", function=function, ce_id=headers["ce-id"],
                    ce_type=headers["ce-type"], ce_subject=headers.get("ce-subject"),
                    attempt=attempt + 1)
                return True
            self.count("retried")
            log("WARNING", "delivery failed, retrying", function=function, status=status,
                ce_id=headers["ce-id"], attempt=attempt + 1)
            time.sleep(min(MAX_BACKOFF, self.base_backoff * 2**attempt))
        self.count("failed")
        log("ERROR", "delivery failed, leaving to Pub/Sub redelivery", function=function,
            ce_id=headers["ce-id"])
        return False

    def fan_out(self, targets: list[tuple[str, str, str]], headers: dict[str, str],
                body: bytes) -> bool:
        """Deliver to every target whose trigger matches the event type (Eventarc's filter)."""
        calls = [(name, url) for name, url, event_type in targets
                 if event_type == headers["ce-type"] for _ in range(self.deliveries)]
        if len(calls) == 1:  # the usual case: no hand-off to another thread
            return self.post(calls[0][0], calls[0][1], headers, body)
        jobs = [self.pool.submit(self.post, name, url, headers, body) for name, url in calls]
        return all(job.result() for job in jobs)

    def on_storage_message(self, message) -> None:
        log("DEBUG", "received", ce_id=message.message_id)
        event = cloudevents.storage_event(message.message_id, dict(message.attributes),
                                          message.data, message.publish_time)
        if event is None or event[2] not in self.bucket_targets:
            message.ack()  # another project's bucket, or an event type we do not route
            return
        headers, body, bucket = event
        if self.fan_out(self.bucket_targets[bucket], headers, body):
            message.ack()
        else:
            message.nack()

    def topic_callback(self, topic: str, subscription: str):
        def callback(message) -> None:
            log("DEBUG", "received", topic=topic, ce_id=message.message_id)
            headers, body = cloudevents.pubsub_event(
                self.project, topic, subscription, message.message_id, message.data,
                dict(message.attributes), message.publish_time)
            if self.fan_out(self.topic_targets[topic], headers, body):
                message.ack()
            else:
                message.nack()
        return callback


def storage_subscription(project: str) -> str:
    """The stack's subscription to the storage-events topic every stack shares (one fake-gcs
    publishes for all): it receives every stack's events and routes its own buckets'."""
    return f"projects/{project}/subscriptions/router-{project}-gcs"


def subscribe(router: Router) -> list:
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

    subscriber = pubsub_v1.SubscriberClient()
    publisher = pubsub_v1.PublisherClient()
    futures = []
    deadline = router.ack_deadline or 60
    flow = (pubsub_v1.types.FlowControl(max_messages=64, max_lease_duration=deadline,
                                        min_duration_per_lease_extension=deadline,
                                        max_duration_per_lease_extension=deadline)
            if router.ack_deadline else pubsub_v1.types.FlowControl(max_messages=64))
    events_topic = os.environ["PACS_GCS_EVENTS_TOPIC"]
    plan = [(events_topic, storage_subscription(router.project).rsplit("/", 1)[1],
             router.on_storage_message)]
    for topic in router.topic_targets:
        topic_path = publisher.topic_path(router.project, topic)
        try:
            publisher.create_topic(name=topic_path)
        except AlreadyExists:
            pass
        name = f"router-{topic}"
        plan.append((topic_path, name, router.topic_callback(topic, name)))
    for topic_path, name, callback in plan:
        sub_path = subscriber.subscription_path(router.project, name)
        try:
            subscriber.create_subscription(name=sub_path, topic=topic_path,
                                           ack_deadline_seconds=deadline)
        except AlreadyExists:
            pass
        futures.append(subscriber.subscribe(
            sub_path, callback, flow_control=flow,
            scheduler=ThreadScheduler(ThreadPoolExecutor(max_workers=32))))
    return futures


def serve(router: Router, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            body = json.dumps({"ready": True, "deliveries": router.deliveries, **router.stats})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def do_POST(self):  # noqa: N802 - the test switch: {"deliveries": 2}
            length = int(self.headers.get("Content-Length") or 0)
            settings = json.loads(self.rfile.read(length) or b"{}")
            router.deliveries = max(1, int(settings.get("deliveries", router.deliveries)))
            self.do_GET()

        def log_message(self, *args):  # quiet
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main(argv: list[str]) -> None:
    cfg = json.loads(argv[1])
    router = Router(cfg)
    subscribe(router)
    log("INFO", "router ready", project=router.project, buckets=list(router.bucket_targets),
        topics=list(router.topic_targets), deliveries=router.deliveries)
    serve(router, int(cfg["router_port"]))


if __name__ == "__main__":
    main(sys.argv)
