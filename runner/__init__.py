"""changeclothes-runner: a batch runner for Tencent Cloud's ChangeClothes API."""

__version__ = "0.1.0"
