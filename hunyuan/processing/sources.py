"""Turn an image *source* into a decoded PIL image.

A source is a local path, a ``file://`` URL, a ``data:image/...;base64,`` URL, raw bytes, a bare base64 string, an
``http(s)`` URL (fetched with a timeout and a size cap) or an already decoded image (PIL, NumPy, torch), which is
passed through untouched. Every failure raises :class:`ImageSourceError` naming the source, never a PIL or socket
traceback.

Files are decoded eagerly (``Image.load()``) so a truncated file fails here, with its name, instead of deep inside
resizing; the EXIF orientation is applied, so a phone photo is upright, as transformers' ``load_image`` does.
Unlike ``load_image`` the colour mode is kept: the image processor composites transparency onto white, the way it
does for in-memory images (see docs/decisions.md).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class ImageSourceError(ValueError):
    """An image source could not be read or decoded; the message names the source."""


def _describe(source: Any) -> str:
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    text = str(source)
    return text if len(text) <= 120 else text[:80] + f"...<{len(text)} chars>"


def _decode(data: bytes | str, described: str) -> Image.Image:
    """Decode fully (truncated files fail here) and apply the EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
            image.load()
    except UnidentifiedImageError:
        raise ImageSourceError(f"{described} is not an image file PIL can decode") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageSourceError(f"could not decode image {described}: {err}") from None
    return ImageOps.exif_transpose(image)


def _fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "hunyuan-image-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise ImageSourceError(
            f"could not fetch image {url!r}: {reason}. Without network access, download the image and pass a "
            "local path, bytes or a data: URL instead") from None
    if len(data) > max_bytes:
        raise ImageSourceError(f"image at {url!r} is larger than the {max_bytes}-byte cap (max_bytes)")
    return data


def load_image(source: Any, *, timeout: float = DEFAULT_TIMEOUT_S, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Decode ``source`` to a PIL image; PIL images, arrays and tensors are returned unchanged.

    >>> load_image("page.png").size          # doctest: +SKIP
    (1654, 2339)
    """
    if isinstance(source, (bytes, bytearray)):
        return _decode(bytes(source), _describe(source))
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        return source
    described = repr(_describe(source))
    if source.startswith(("http://", "https://")):
        return _decode(_fetch(source, timeout, max_bytes), described)
    if source.startswith("file://"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(source).path)
        return _load_path(path, described)
    if source.startswith("data:"):
        header, _, payload = source.partition(",")
        if ";base64" not in header or not payload:
            raise ImageSourceError(f"data URL {described} is not of the form data:image/...;base64,<payload>")
        return _decode(_b64decode(payload, described), described)
    if os.path.exists(source):
        return _load_path(source, described)
    data = _b64decode(source) if len(source) >= 64 else None
    if data is None:
        raise ImageSourceError(f"image file {described} does not exist (nor is it an http(s), file: or data: URL, "
                               "or base64 image data)")
    return _decode(data, described)


def _load_path(path: str, described: str) -> Image.Image:
    if not os.path.exists(path):
        raise ImageSourceError(f"image file {described} does not exist")
    if os.path.isdir(path):
        raise ImageSourceError(f"image path {described} is a directory, not an image file")
    return _decode(path, described)


def _b64decode(payload: str, described: str | None = None) -> bytes | None:
    """Decoded bytes; with no ``described`` a malformed payload gives None instead of an error."""
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        if described is None:
            return None
        raise ImageSourceError(f"data URL {described} does not carry valid base64 data") from None
