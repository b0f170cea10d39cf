"""Getting the task's input images as the service would: download, then the documented limits.

Downloads go to 127.0.0.1 only (the fake's own `/images/` route or any other local server);
any other host is answered as a download error without a packet leaving the machine.
Limits from the API page: each side greater than 512 and less than 3000 pixels, and less
than 8 MB once Base64 encoded.
"""

from __future__ import annotations

import io
import warnings
from urllib.parse import urlsplit

import aiohttp
from PIL import Image

from runner.fake.protocol import Rejected

ALLOWED_HOSTS = frozenset({"127.0.0.1"})
MIN_SIDE = 512  # exclusive
MAX_SIDE = 3000  # exclusive
MAX_BASE64_BYTES = 8 * 1024 * 1024  # exclusive
# The largest file whose Base64 form stays under the limit.
MAX_FILE_BYTES = (MAX_BASE64_BYTES - 1) // 4 * 3
FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5)

DOWNLOAD_ERROR = "FailedOperation.ImageDownloadError"
DECODE_FAILED = "FailedOperation.ImageDecodeFailed"
SIZE_EXCEED = "FailedOperation.ImageSizeExceed"
RESOLUTION_EXCEED = "FailedOperation.ImageResolutionExceed"


def base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


async def download(session: aiohttp.ClientSession, url: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes at `url`; `Rejected` when it cannot be fetched or is larger than `limit`."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if host not in ALLOWED_HOSTS:
        raise Rejected(DOWNLOAD_ERROR)
    try:
        # No redirects: one could lead away from 127.0.0.1.
        async with session.get(url, allow_redirects=False, timeout=DOWNLOAD_TIMEOUT) as resp:
            if resp.status != 200:
                raise Rejected(DOWNLOAD_ERROR)
            if resp.content_length is not None and resp.content_length > limit:
                raise Rejected(SIZE_EXCEED)
            chunks: list[bytes] = []
            total = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                total += len(chunk)
                if total > limit:
                    raise Rejected(SIZE_EXCEED)
                chunks.append(chunk)
            return b"".join(chunks)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        raise Rejected(DOWNLOAD_ERROR) from None


def open_image(data: bytes, *, check_limits: bool = True, code: str = DECODE_FAILED) -> Image.Image:
    """Decode `data` fully; `Rejected` as the service answers for each broken limit.

    Resolution is read from the header before the pixels are decoded, so an oversized
    picture costs nothing to refuse.
    """
    if check_limits and base64_length(len(data)) >= MAX_BASE64_BYTES:
        raise Rejected(SIZE_EXCEED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise Rejected(code)
            width, height = image.size
            if check_limits and not (MIN_SIDE < width < MAX_SIDE and MIN_SIDE < height < MAX_SIDE):
                raise Rejected(RESOLUTION_EXCEED)
            image.load()
    except Rejected:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        raise Rejected(code) from None
    return image
