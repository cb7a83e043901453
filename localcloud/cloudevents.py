"""Build the CloudEvents Eventarc sends, in binary content mode (``ce-*`` headers)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

STORAGE_TYPES = {
    "OBJECT_FINALIZE": "google.cloud.storage.object.v1.finalized",
    "OBJECT_DELETE": "google.cloud.storage.object.v1.deleted",
    "OBJECT_METADATA_UPDATE": "google.cloud.storage.object.v1.metadataUpdated",
}
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


def _rfc3339(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def storage_event(message_id: str, attributes: Mapping[str, str], payload: bytes,
                  publish_time: Any) -> tuple[dict[str, str], bytes, str] | None:
    """Turn a GCS notification (JSON_API_V1) into (headers, body, bucket); None if not one."""
    event_type = STORAGE_TYPES.get(attributes.get("eventType", ""))
    if event_type is None:
        return None
    resource = json.loads(payload.decode("utf-8")) if payload else {}
    bucket = attributes.get("bucketId") or resource.get("bucket", "")
    name = attributes.get("objectId") or resource.get("name", "")
    headers = {
        "ce-specversion": "1.0",
        "ce-id": message_id,
        "ce-type": event_type,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{name}",
        "ce-time": _rfc3339(attributes.get("eventTime") or resource.get("updated") or publish_time),
        "Content-Type": "application/json",
    }
    return headers, json.dumps(resource).encode(), bucket


def pubsub_event(project: str, topic: str, subscription: str, message_id: str,
                 data: bytes, attributes: Mapping[str, str], publish_time: Any
                 ) -> tuple[dict[str, str], bytes]:
    """A messagePublished CloudEvent for one Pub/Sub message."""
    published = _rfc3339(publish_time)
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": dict(attributes),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": f"projects/{project}/subscriptions/{subscription}",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-id": message_id,
        "ce-type": PUBSUB_TYPE,
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "ce-time": published,
        "Content-Type": "application/json",
    }
    return headers, json.dumps(body).encode()
