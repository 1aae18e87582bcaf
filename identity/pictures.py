"""Profile pictures: what is accepted, and how it is stored.

The file name and the Content-Type a client sends are claims, not facts, so neither is read.
The bytes are decoded with Pillow, restricted to the three accepted decoders (no other
decoder, with its own bugs, ever sees uploaded bytes), and the picture is re-encoded before
it is stored. Re-encoding means what is stored and served is an image Pillow produced, not
the uploaded bytes (a polyglot file cannot survive it), and drops EXIF and text chunks,
which often hold the location where a photo was taken.
"""

import io
from dataclasses import dataclass
from typing import IO, Any

from django.core.files.base import ContentFile
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ErrorCode, ProblemError

PICTURE_MAX_BYTES = 2 * 1024 * 1024
# A small file can still decode to a huge bitmap (a "decompression bomb"): anything above
# this many pixels is refused before it is decoded. 40 MP is far beyond any phone camera.
PICTURE_MAX_PIXELS = 40_000_000
# Stored pictures are avatars: larger ones are scaled down to fit this box.
PICTURE_STORED_SIDE = 1024

# Pillow format name -> file extension of what is stored.
PICTURE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@dataclass(frozen=True)
class CheckedPicture:
    """A decoded, re-encoded picture, ready to store."""

    content: bytes
    format: str
    extension: str

    def as_file(self) -> ContentFile:
        return ContentFile(self.content, name=f"picture.{self.extension}")


def _unsupported(detail: str = "Upload a JPEG, PNG or WebP image.") -> ProblemError:
    return ProblemError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, detail, errors={"picture": [detail]})


def _too_large(detail: str) -> ProblemError:
    return ProblemError(ErrorCode.PAYLOAD_TOO_LARGE, detail, errors={"picture": [detail]})


def picture_check(upload: IO[bytes] | Any) -> CheckedPicture:
    """Accept a JPEG, PNG or WebP of at most 2 MB, or refuse it.

    413 payload_too_large over 2 MB (or above PICTURE_MAX_PIXELS); 415 unsupported_media_type
    for any other content, whatever its name or declared type, and for files that do not
    decode completely (truncated, corrupt).
    """
    size = getattr(upload, "size", None)
    if size is None or size > PICTURE_MAX_BYTES:
        raise _too_large(f"A picture may be at most {PICTURE_MAX_BYTES // (1024 * 1024)} MB.")
    try:
        upload.seek(0)
        with Image.open(upload, formats=list(PICTURE_FORMATS)) as image:
            image_format = image.format or ""
            if image_format not in PICTURE_FORMATS:
                raise _unsupported()
            width, height = image.size
            if width * height > PICTURE_MAX_PIXELS:
                raise _too_large("The picture has too many pixels.")
            image.load()  # decodes everything: a truncated or corrupt file fails here
            content = _reencode(image, image_format)
    except Image.DecompressionBombError as exc:
        raise _too_large("The picture has too many pixels.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _unsupported() from exc
    finally:
        upload.seek(0)
    return CheckedPicture(content=content, format=image_format, extension=PICTURE_FORMATS[image_format])


def _reencode(image: Image.Image, image_format: str) -> bytes:
    # exif_transpose: the stored picture is upright even though its EXIF is dropped.
    picture = ImageOps.exif_transpose(image) or image
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    picture = picture.convert("RGBA" if has_alpha and image_format != "JPEG" else "RGB")
    picture.thumbnail((PICTURE_STORED_SIDE, PICTURE_STORED_SIDE))
    out = io.BytesIO()
    if image_format == "JPEG":
        picture.save(out, "JPEG", quality=85, optimize=True)
    elif image_format == "WEBP":
        picture.save(out, "WEBP", quality=85)
    else:
        picture.save(out, "PNG", optimize=True)
    return out.getvalue()
