"""File uploads: size-capped, type sniffed from the bytes, stored under the tenant's prefix with a
server-generated name, and served only through authenticated, scoped views.

The client's file name and Content-Type are never trusted: the type comes from the file's magic
bytes (``filetype``), the stored name is ``<schema>/<category>/<yyyy>/<mm>/<uuid>.<ext>``, and the
original name is kept only as metadata. A download is named after it with the extension of the
sniffed type (``invoice.html`` holding a PDF downloads as ``invoice.pdf``), so no browser or
desktop opens the bytes as the type the uploader's name claimed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import filetype
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404
from django.utils import timezone
from django.utils.text import get_valid_filename
from rest_framework.exceptions import ValidationError

from apikit.errors import APIError
from apikit.ids import new_id
from apikit.middleware import PRIVATE_NO_STORE
from apikit.tenancy import current_schema_name

DOCUMENT_TYPES: Mapping[str, str] = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
}
_SNIFF_BYTES = 8192
_MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class StoredFile:
    path: str
    content_type: str
    size: int
    sha256: str
    original_name: str


def _describe(types: Mapping[str, str]) -> str:
    return ", ".join(ext.upper() for ext in types.values())


def upload_store(
    *,
    upload: UploadedFile,
    category: str,
    max_bytes: int,
    allowed_types: Mapping[str, str] = DOCUMENT_TYPES,
) -> StoredFile:
    """Check and store one uploaded file in the current tenant's space."""
    size = upload.size or 0
    if size == 0:
        raise ValidationError({"file": ["The file is empty."]})
    if size > max_bytes:
        raise APIError(
            status=413,
            code="payload_too_large",
            detail=f"The file is {size} bytes; at most {max_bytes} bytes are accepted.",
        )
    upload.seek(0)
    head = upload.read(_SNIFF_BYTES)
    kind = filetype.guess(head)
    content_type: str | None = kind.mime if kind is not None else None
    if content_type is None or content_type not in allowed_types:
        raise APIError(
            status=415,
            code="unsupported_file_type",
            detail=(
                f"Upload a {_describe(allowed_types)} file; this one "
                f"{'is ' + content_type if content_type else 'is of an unrecognised type'}."
            ),
        )
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    now = timezone.now()
    name = (
        f"{current_schema_name()}/{category}/{now:%Y}/{now:%m}/"
        f"{new_id()}.{allowed_types[content_type]}"
    )
    stored_as = default_storage.save(name, upload)
    original = get_valid_filename((upload.name or "upload").rsplit("/", 1)[-1])
    return StoredFile(
        path=stored_as,
        content_type=content_type,
        size=size,
        sha256=digest.hexdigest(),
        original_name=original[:_MAX_NAME_LENGTH] or "upload",
    )


def stored_file_open(*, path: str) -> File:
    """Open a stored file of the current tenant; anything outside its prefix is not found."""
    prefix = f"{current_schema_name()}/"
    if not path.startswith(prefix) or ".." in path.split("/") or not default_storage.exists(path):
        raise Http404
    return default_storage.open(path, "rb")


def extension_for(*, content_type: str) -> str:
    """The file extension of a sniffed type (``application/pdf`` -> ``pdf``)."""
    kind = filetype.get_type(mime=content_type)
    if kind is not None:
        return str(kind.extension)
    return DOCUMENT_TYPES.get(content_type, "bin")


def download_filename(*, original_name: str, content_type: str) -> str:
    """``original_name`` with its last extension replaced by the sniffed type's:
    ``invoice.html`` -> ``invoice.pdf``, ``scan`` -> ``scan.pdf``, ``a.pdf.html`` -> ``a.pdf``."""
    extension = extension_for(content_type=content_type)
    name = original_name.rsplit("/", 1)[-1]
    stem, dot, _ = name.rpartition(".")
    stem = (stem if dot else name).strip(". ")
    if stem.lower().endswith(f".{extension}"):
        stem = stem[: -len(extension) - 1]
    stem = stem[: _MAX_NAME_LENGTH - len(extension) - 1] or "download"
    return f"{stem}.{extension}"


def stored_file_response(*, path: str, content_type: str, filename: str) -> FileResponse:
    """A download of a stored file (the caller has already checked the user may see it), named
    ``filename`` with the extension of its sniffed ``content_type``."""
    response = FileResponse(
        stored_file_open(path=path),
        content_type=content_type,
        as_attachment=True,
        filename=download_filename(original_name=filename, content_type=content_type),
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = PRIVATE_NO_STORE
    return response


def stored_file_delete(*, path: str) -> None:
    if path.startswith(f"{current_schema_name()}/"):
        default_storage.delete(path)
