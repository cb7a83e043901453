"""Decoding of the CloudEvents Eventarc delivers: storage object events and Pub/Sub
messages. Pure functions over the event's attributes and data."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StorageObjectEvent:
    """A ``google.cloud.storage.object.v1.*`` event: which object, which generation."""

    event_id: str
    event_type: str
    bucket: str
    name: str
    generation: str
    size: int
    content_type: str
    md5_hash: str
    time: str
    # The object's custom metadata, as the event carries it (never logged: it may hold a
    # sealed header, pacs.dicom.seal).
    metadata: Mapping[str, str] = field(default_factory=dict)


def storage_event(attributes: Mapping[str, Any], data: Mapping[str, Any]) -> StorageObjectEvent:
    """Decode a storage CloudEvent's attributes and data (the object resource)."""
    return StorageObjectEvent(
        event_id=str(attributes.get("id", "")),
        event_type=str(attributes.get("type", "")),
        bucket=str(data.get("bucket", "")),
        name=str(data.get("name", "")),
        generation=str(data.get("generation", "")),
        size=int(data.get("size") or 0),
        content_type=str(data.get("contentType", "")),
        md5_hash=str(data.get("md5Hash", "")),
        time=str(attributes.get("time", "")),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()}
        if isinstance(data.get("metadata"), Mapping) else {},
    )


@dataclass(frozen=True)
class PubsubMessage:
    """A ``google.cloud.pubsub.topic.v1.messagePublished`` event's message."""

    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: str

    def json(self) -> Any:
        return json.loads(self.data.decode("utf-8")) if self.data else {}


def pubsub_message(data: Mapping[str, Any]) -> PubsubMessage:
    """Decode the data of a messagePublished CloudEvent."""
    message = data.get("message") or {}
    raw = message.get("data") or ""
    return PubsubMessage(
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        data=base64.b64decode(raw) if raw else b"",
        attributes=dict(message.get("attributes") or {}),
        publish_time=str(message.get("publishTime") or message.get("publish_time") or ""),
    )


def event_age_seconds(time_attr: str, now: datetime) -> float:
    """Seconds since the event's ``time``; 0 when it has none (checked against max age)."""
    if not time_attr:
        return 0.0
    when = datetime.fromisoformat(time_attr.replace("Z", "+00:00"))
    return (now - when).total_seconds()
