"""A message's media, fetched before Meta's links expire: resolve the media id (`GET /{media-id}`: url, mime
type, sha256, size), download the file with the token within the URL's few minutes, check its size and
SHA-256 against Meta's answer, and record where it is (whatsapp_media_files, one row per message).

The file is written to a temporary name beside its final one and renamed only once both checks pass, so a
file under its final name is always whole and verified; fetching again replaces it with the same bytes.
"""

import base64
import binascii
import hashlib
import mimetypes
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import requests
from sqlalchemy import Insert, select
from sqlalchemy.orm import Session

from models import MediaFile, WhatsAppBusinessSettings, WhatsAppMessage
from models.db import dialect_of, upsert
from outbound.graph import GraphClient, GraphProtocolError

CHUNK_BYTES = 64 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9_-]")  # media ids are digits: nothing else reaches a path or URL


class MediaError(Exception):
    """The file Meta served is not the one it described (size or hash), or is larger than allowed.
    A download can be corrupted on the way, so this is worth another attempt."""


class NoMedia(Exception):
    """The message is unknown, or carries no media id."""


@dataclass(frozen=True)
class MediaInfo:
    id: str
    url: str
    mime_type: str | None
    sha256: str  # hex
    size: int

    @classmethod
    def parse(cls, answer: dict[str, object], media_id: str) -> "MediaInfo":
        url, digest, size = answer.get("url"), answer.get("sha256"), answer.get("file_size")
        if not isinstance(url, str) or not isinstance(digest, str):
            raise GraphProtocolError("the media answer has no url or sha256")
        try:
            length = int(str(size))  # Meta sends the size as a string ("303833"); some answers as a number
        except ValueError:
            raise GraphProtocolError(f"the media answer's file_size {size!r} is not a number") from None
        mime = answer.get("mime_type")
        mime_type = mime if isinstance(mime, str) else None
        return cls(str(answer.get("id") or media_id), url, mime_type, hex_digest(digest), length)


def hex_digest(value: str) -> str:
    """Meta's SHA-256 as hex, whether it came as hex (the media endpoint) or base64 (webhooks)."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise GraphProtocolError(f"the media answer's sha256 {value!r} is neither hex nor base64 of 32 bytes")
    return raw.hex()


@dataclass(frozen=True)
class Subject:
    message_id: int
    tenant_id: int
    media_id: str
    phone_number_id: str | None


def subject(session: Session, wamid: str) -> Subject:
    message, settings = WhatsAppMessage, WhatsAppBusinessSettings
    row = session.execute(
        select(message.id, message.tenant_id, message.media_id, settings.phone_number_id)
        .outerjoin(settings, settings.tenant_id == message.tenant_id)
        .where(message.wamid == wamid)
    ).first()
    if row is None or not row.media_id:
        raise NoMedia(f"message {wamid} is not stored or carries no media id")
    return Subject(row.id, row.tenant_id, row.media_id, row.phone_number_id)


def fetch(
    client: GraphClient, media_id: str, phone_number_id: str | None, folder: Path, max_bytes: int
) -> tuple[MediaInfo, Path]:
    """Resolve and download one media file into folder; returns Meta's description and the file's path."""
    params = {"phone_number_id": phone_number_id} if phone_number_id else None
    info = MediaInfo.parse(client.get(_SAFE.sub("_", media_id), params), media_id)
    if info.size > max_bytes:
        raise MediaError(f"media {media_id} is {info.size} bytes, more than the {max_bytes} allowed")
    folder.mkdir(parents=True, exist_ok=True)
    extension = mimetypes.guess_extension(info.mime_type or "") or ""
    final = folder / f"{_SAFE.sub('_', media_id)}{extension}"
    partial = final.with_name(f".{final.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        with client.open_download(info.url) as response, partial.open("wb") as out:
            for chunk in response.iter_content(CHUNK_BYTES):
                size += len(chunk)
                if size > info.size or size > max_bytes:
                    raise MediaError(f"media {media_id}: more bytes than the {info.size} Meta announced")
                digest.update(chunk)
                out.write(chunk)
        if size != info.size:
            raise MediaError(f"media {media_id}: {size} bytes downloaded, Meta announced {info.size}")
        if digest.hexdigest() != info.sha256:
            raise MediaError(f"media {media_id}: its SHA-256 is not the one Meta announced")
        partial.replace(final)
    except requests.RequestException as error:  # the download broke off: worth another attempt
        raise MediaError(f"media {media_id}: the download failed ({type(error).__name__})") from None
    finally:
        partial.unlink(missing_ok=True)
    return info, final


@cache
def _record(dialect: str) -> Insert:
    stmt = upsert(dialect, MediaFile.__table__)
    columns = ("media_id", "mime_type", "size", "sha256", "path")
    return stmt.on_conflict_do_update(
        index_elements=["message_id"], set_={c: stmt.excluded[c] for c in columns}
    )


def record(session: Session, message_id: int, info: MediaInfo, path: Path) -> None:
    session.execute(
        _record(dialect_of(session)),
        {
            "message_id": message_id,
            "media_id": info.id,
            "mime_type": info.mime_type,
            "size": info.size,
            "sha256": info.sha256,
            "path": str(path.resolve()),
        },
    )
