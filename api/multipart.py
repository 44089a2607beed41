"""A small multipart/form-data reader (RFC 7578) for uploads: the body is read with a size cap while
it streams in, then split into parts. Small enough that python-multipart is not worth a dependency,
and the caps are ours: a body over the limit is refused (413) without being read whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import collapse_rfc2231_value
from typing import Any

from fastapi import HTTPException, Request

# Part headers and boundaries around the files.
MULTIPART_SLACK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Part:
    name: str | None
    filename: str | None
    content_type: str | None
    data: bytes


def media_type(request: Request) -> str:
    """The request's content type without parameters, lower case ("" when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, too_large: str) -> bytes:
    """The whole body, or 413 ``too_large`` as soon as it passes ``limit`` bytes."""
    refused = HTTPException(413, too_large)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise refused  # without reading a byte of it
    body, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise refused
        body.append(chunk)
    return b"".join(body)


def params(header: str, value: str) -> EmailMessage:
    message = EmailMessage()
    message[header] = value
    return message


def _invalid(problem: str) -> HTTPException:
    return HTTPException(422, [{"where": "body", "problem": problem}])


def parse_parts(content_type: str, body: bytes, max_parts: int | None = None) -> list[Part]:
    """Every part of a multipart/form-data body, in order. 422 without a boundary; 413 when there
    are more than ``max_parts``."""
    boundary = params("content-type", content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise _invalid("multipart/form-data without a boundary")
    parts: list[Part] = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        if max_parts is not None and len(parts) >= max_parts:
            raise HTTPException(413, f"more than {max_parts} parts in one request")
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            key, sep, value = line.partition(b":")
            if sep:
                headers[key.strip().lower().decode("latin-1")] = value.decode("latin-1").strip()
        disposition = params("content-disposition", headers.get("content-disposition", ""))
        name = disposition.get_param("name", header="content-disposition")
        filename = disposition.get_param("filename", header="content-disposition")
        parts.append(Part(_text(name), _text(filename), headers.get("content-type"),
                          content.removesuffix(b"\r\n")))
    return parts


def _text(param: Any) -> str | None:
    if param is None:
        return None
    return collapse_rfc2231_value(param)  # filename*=UTF-8''... comes back as a tuple
