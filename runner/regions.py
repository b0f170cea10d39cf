"""Region names Tencent Cloud's API 3.0 accepts in `X-TC-Region`.

The ChangeClothes page refers to "the list of regions supported by the product"; this is the
region table Tencent's API 3.0 pages give (the public, non-financial regions). New regions
appear from time to time, so an unknown name is warned about, not refused.
"""

from __future__ import annotations

import difflib

KNOWN_REGIONS = (
    "ap-guangzhou",
    "ap-shanghai",
    "ap-nanjing",
    "ap-beijing",
    "ap-chengdu",
    "ap-chongqing",
    "ap-hongkong",
    "ap-singapore",
    "ap-jakarta",
    "ap-bangkok",
    "ap-mumbai",
    "ap-seoul",
    "ap-tokyo",
    "na-ashburn",
    "na-siliconvalley",
    "na-toronto",
    "sa-saopaulo",
    "eu-frankfurt",
)


def unknown_region_warning(region: str) -> str | None:
    """A sentence for a region not in the list (with the nearest known name), else None."""
    if region in KNOWN_REGIONS:
        return None
    close = difflib.get_close_matches(region, KNOWN_REGIONS, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"Warning: region {region!r} is not one Tencent Cloud lists; using it anyway.{hint}"
