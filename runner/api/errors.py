"""The error table, as data, and the exceptions built from it.

Everything that needs to know what an error code means (the client, the scheduler, the fake
server, reports) reads `ERROR_TABLE` through `rule_for`; no other module lists codes. The
classes are explained in docs/design-notes.md ("Error classes"); the README's table of codes
is checked against this one by tests/test_readme_tables.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runner.credentials import ENV_SECRET_ID, ENV_SECRET_KEY, ENV_SESSION_TOKEN


class ErrorClass(StrEnum):
    THROTTLE = "throttle"  # not the job's fault: account-wide backoff, no attempt charged
    CLOCK = "clock"  # our clock is off: re-sign with the server's time, retry once
    TRANSIENT = "transient"  # charge an attempt, retry later
    BAD_ROW = "bad_row"  # the row itself is wrong: fail the job at once
    HALT = "halt"  # every further call would fail the same way: stop the run
    WAIT = "wait"  # service still being activated: long backoff, then halt
    # The endpoint is unreachable or something that is not the API answered: a property of
    # the network, not of the job. Pause account-wide, charge no attempt, probe, resume.
    OUTAGE = "outage"


@dataclass(frozen=True)
class ErrorRule:
    code: str
    error_class: ErrorClass
    message: str  # the vendor's description, used by the fake server and in reports
    advice: str = ""  # what a user should do, for halting codes
    prefix: bool = False  # also matches `code.<anything>`


T, C, R, B, H, W, U = (
    ErrorClass.THROTTLE,
    ErrorClass.CLOCK,
    ErrorClass.TRANSIENT,
    ErrorClass.BAD_ROW,
    ErrorClass.HALT,
    ErrorClass.WAIT,
    ErrorClass.OUTAGE,
)

# Codes the client makes up for failures that never reached a Tencent error body.
TIMEOUT = "ClientError.Timeout"
CONNECTION = "ClientError.ConnectionError"
BAD_RESPONSE = "ClientError.BadResponse"
HTTP_STATUS = "ClientError.HttpStatus"
RESPONSE_TOO_LARGE = "ClientError.ResponseTooLarge"
BAD_REQUEST_ID = "ClientError.BadRequestId"
BAD_RESULT_IMAGE = "ClientError.BadResultImage"
UNREACHABLE = "ClientError.Unreachable"
NOT_THE_API = "ClientError.NotTheApi"
# Codes for what a result download (or a base64 result) turned out to be.
URL_EXPIRED = "ClientError.UrlExpired"
DOWNLOAD_HTTP_STATUS = "ClientError.DownloadHttpStatus"
DOWNLOAD_TIMEOUT = "ClientError.DownloadTimeout"
DOWNLOAD_CONNECTION = "ClientError.DownloadConnection"
DOWNLOAD_TRUNCATED = "ClientError.DownloadTruncated"
DOWNLOAD_REDIRECTS = "ClientError.DownloadRedirects"
RESULT_NOT_AN_IMAGE = "ClientError.ResultNotAnImage"
RESULT_TOO_LARGE = "ClientError.ResultTooLarge"
# A job whose result could not be fetched after --max-regenerations new generations.
RESULT_LOST = "ClientError.ResultLost"

_BILLING = "Check billing and the service status in the Tencent Cloud console, then rerun."

ERROR_TABLE: tuple[ErrorRule, ...] = (
    # throttle
    ErrorRule("RequestLimitExceeded", T, "Too frequent requests", prefix=True),
    ErrorRule(
        "RequestLimitExceeded.JobNumExceed",
        T,
        "Too many tasks are being processed simultaneously. Please try again later.",
    ),
    # clock
    ErrorRule("AuthFailure.SignatureExpire", C, "Signature expired. Timestamp is too far off."),
    # transient
    ErrorRule(
        "FailedOperation.GenerateImageFailed",
        R,
        "The generated image failed the review. Please try again.",
    ),
    ErrorRule("FailedOperation.InnerError", R, "Internal service error. Please try again."),
    ErrorRule("FailedOperation.RequestTimeout", R, "The backend service timed out."),
    ErrorRule(
        "FailedOperation.RpcFail",
        R,
        "RPC request failed, typically due to algorithm service malfunction.",
    ),
    ErrorRule("FailedOperation.ServerError", R, "Internal service error."),
    ErrorRule("FailedOperation.Unknown", R, "Unknown error."),
    ErrorRule(
        "FailedOperation.ImageDownloadError",
        R,
        "Image download error.",
        advice="The service could not fetch an input image: check the row's URLs (and "
        "--base-url) with `changeclothes validate`, which fetches every input, then fix the "
        "row and submit it again with --replace. Retrying the same URL rarely helps.",
    ),
    ErrorRule("InternalError", R, "Internal error.", prefix=True),
    ErrorRule("ServiceUnavailable", R, "Service is unavailable now.", prefix=True),
    ErrorRule(TIMEOUT, R, "The request timed out before the service answered."),
    ErrorRule(CONNECTION, R, "The connection to the service failed."),
    ErrorRule(BAD_RESPONSE, R, "The service answered with a body that is not an API response."),
    ErrorRule(HTTP_STATUS, R, "The service answered with an HTTP error status."),
    ErrorRule(RESPONSE_TOO_LARGE, R, "The service's answer was larger than the cap."),
    ErrorRule(BAD_REQUEST_ID, R, "The answer's RequestId is not short text."),
    ErrorRule(
        BAD_RESULT_IMAGE, R, "The answer's ResultImage is not a bounded http(s) URL or Base64."
    ),
    # Download outcomes: retried with backoff while the URL is valid, then generated again.
    ErrorRule(URL_EXPIRED, R, "The result URL expired before it was fetched."),
    ErrorRule(DOWNLOAD_HTTP_STATUS, R, "The result host answered with an HTTP error status."),
    ErrorRule(DOWNLOAD_TIMEOUT, R, "The result download timed out."),
    ErrorRule(DOWNLOAD_CONNECTION, R, "The connection to the result host failed."),
    ErrorRule(DOWNLOAD_TRUNCATED, R, "The result download ended early."),
    ErrorRule(DOWNLOAD_REDIRECTS, R, "The result URL redirected too many times."),
    ErrorRule(RESULT_NOT_AN_IMAGE, R, "The result is not an image the runner can decode safely."),
    ErrorRule(RESULT_TOO_LARGE, R, "The result is larger than --max-result-bytes."),
    ErrorRule(
        RESULT_LOST,
        R,
        "The result could not be fetched, even after generating it again --max-regenerations "
        "times (each a paid call).",
    ),
    # bad row
    ErrorRule("FailedOperation.ImageDecodeFailed", B, "Image decoding failed."),
    ErrorRule(
        "FailedOperation.ImageResolutionExceed",
        B,
        "The image resolution is too high, which exceeds 2000×2000.",
        # The service's own message (repeated word for word) is wrong for a small image.
        advice="An input image is outside the API's limits: each side must be more than 512 "
        "and less than 3000 pixels (the message's 2000×2000 is the service's own wording). "
        "Resize it, then submit the row again with --replace.",
    ),
    ErrorRule(
        "FailedOperation.ImageSizeExceed",
        B,
        "The size of the image after base64 encoding cannot exceed 10 MB.",
    ),
    ErrorRule(
        "FailedOperation.RequestEntityTooLarge",
        B,
        "The entire request body (usually images) is too large .",
    ),
    ErrorRule("InvalidParameter", B, "Invalid parameters.", prefix=True),
    ErrorRule("InvalidParameter.InvalidParameter", B, "Invalid parameters."),
    ErrorRule("InvalidParameterValue", B, "Parameter or value is invalid.", prefix=True),
    ErrorRule("InvalidParameterValue.ImageEmpty", B, "No image is input."),
    ErrorRule("InvalidParameterValue.ParameterValueError", B, "Parameter or value is invalid."),
    ErrorRule(
        "InvalidParameterValue.StyleConflict", B, "1xx styles cannot be used with other styles."
    ),
    ErrorRule(
        "InvalidParameterValue.TextLengthExceed",
        B,
        "The input text is too long. Use a shorter one and try again.",
    ),
    ErrorRule("InvalidParameterValue.UrlIllegal", B, "The URL format is invalid."),
    ErrorRule("InvalidParameterValue.LogoParamErr", B, "The logo parameters are invalid."),
    ErrorRule("MissingParameter", B, "A required parameter is missing.", prefix=True),
    ErrorRule("UnknownParameter", B, "An unknown parameter was sent.", prefix=True),
    ErrorRule("RequestSizeLimitExceeded", B, "The request body is too large.", prefix=True),
    ErrorRule("OperationDenied", B, "The operation was denied.", prefix=True),
    ErrorRule(
        "OperationDenied.ImageIllegalDetected",
        B,
        "The image failed the review because it contains illegal information.",
    ),
    ErrorRule(
        "OperationDenied.TextIllegalDetected",
        B,
        "The text failed the review because it contains illegal information.",
    ),
    # halt
    ErrorRule(
        "AuthFailure",
        H,
        "Authentication failed.",
        f"Check {ENV_SECRET_ID} / {ENV_SECRET_KEY} (or the profile file) "
        "and the key's permissions in CAM, then rerun.",
        prefix=True,
    ),
    ErrorRule(
        "AuthFailure.SignatureFailure",
        H,
        "The provided credentials could not be validated. Please check your signature.",
        f"The SecretKey does not match the SecretId: check {ENV_SECRET_KEY}, then rerun.",
    ),
    ErrorRule(
        "AuthFailure.SecretIdNotFound",
        H,
        "The SecretId is not found, please ensure that your SecretId is correct.",
        f"The SecretId is unknown or deleted: check {ENV_SECRET_ID}, then rerun.",
    ),
    ErrorRule(
        "AuthFailure.InvalidAuthorization",
        H,
        "The Authorization in the request header is invalid.",
        "The Authorization header was refused as malformed: check that nothing between the "
        "runner and --endpoint rewrites headers, then rerun.",
    ),
    ErrorRule(
        "AuthFailure.UnauthorizedOperation",
        H,
        "You have no permission to perform this operation.",
        "Grant this key the aiart:ChangeClothes permission in CAM, then rerun.",
    ),
    ErrorRule(
        "AuthFailure.TokenFailure",
        H,
        "Token verification failed.",
        f"The temporary token is invalid or expired: refresh {ENV_SESSION_TOKEN}.",
    ),
    ErrorRule(
        "ResourceUnavailable.InArrears",
        H,
        "The account is in arrears.",
        "The account is in arrears: top it up in the Tencent Cloud console, then rerun.",
    ),
    ErrorRule(
        "ResourceUnavailable.LowBalance",
        H,
        "Insufficient balance.",
        "The balance is too low: top up the account, then rerun.",
    ),
    ErrorRule(
        "ResourceUnavailable.NotExist",
        H,
        "The billing status is unknown. Check whether the service has been activated.",
        "Activate the AI art service in the Tencent Cloud console, then rerun.",
    ),
    ErrorRule(
        "ResourceUnavailable.StopUsing",
        H,
        "Services for the account has been stopped.",
        "The service is stopped for this account: " + _BILLING,
    ),
    ErrorRule(
        "ResourcesSoldOut.ChargeStatusException",
        H,
        "The billing status is abnormal.",
        "The billing status is abnormal: " + _BILLING,
    ),
    ErrorRule(
        "LimitExceeded",
        H,
        "The quota is exceeded.",
        "The account's quota is used up: raise it or wait for it to renew, then rerun.",
        prefix=True,
    ),
    ErrorRule(
        "UnsupportedRegion",
        H,
        "The region is not supported.",
        "Pick a region ChangeClothes runs in (--region, e.g. ap-singapore), then rerun.",
    ),
    ErrorRule(
        "InvalidAction",
        H,
        "The API does not exist.",
        "The endpoint does not offer ChangeClothes: check --endpoint.",
    ),
    ErrorRule(
        "NoSuchVersion",
        H,
        "The API version does not exist.",
        "The endpoint does not offer version 2022-12-29: check --endpoint.",
    ),
    ErrorRule(
        "UnauthorizedOperation",
        H,
        "Unauthorized operation.",
        "Grant this key the aiart:ChangeClothes permission in CAM, then rerun.",
        prefix=True,
    ),
    # outage
    ErrorRule(
        UNREACHABLE,
        U,
        "The endpoint could not be reached (refused, DNS, TLS or connect timeout).",
        "Check the network, proxy and --endpoint; the queue is intact, rerun when it answers.",
    ),
    ErrorRule(
        NOT_THE_API,
        U,
        "Something that is not the API answered (an HTML page, a 3xx or a 5xx).",
        "A proxy, gateway or captive portal answered instead of the API: check the network "
        "and --endpoint; the queue is intact, rerun when it answers.",
    ),
    # wait
    ErrorRule(
        "ResourceUnavailable.Delivering",
        W,
        "The resource is being delivered.",
        "The service is still being activated: wait a few minutes, then rerun.",
    ),
)

_EXACT = {rule.code: rule for rule in ERROR_TABLE}
_PREFIXES = sorted((r for r in ERROR_TABLE if r.prefix), key=lambda r: -len(r.code))
_UNKNOWN = ErrorRule("", R, "Unknown error code.")


def rule_for(code: str) -> ErrorRule:
    """The rule for a code: exact match, else the longest family prefix, else transient."""
    if code in _EXACT:
        return _EXACT[code]
    for rule in _PREFIXES:
        if code.startswith(rule.code + "."):
            return rule
    return _UNKNOWN


def classify(code: str) -> ErrorClass:
    return rule_for(code).error_class


class ApiError(Exception):
    """An error answer (or a failure to get one) from the ChangeClothes API.

    Catch a subclass to act on a class of the error table; `code` keeps the exact code.
    """

    error_class: ErrorClass = ErrorClass.TRANSIENT

    def __init__(
        self, code: str, message: str, request_id: str = "", http_status: int | None = None
    ) -> None:
        super().__init__(
            f"{code}: {message}" + (f" (RequestId {request_id})" if request_id else "")
        )
        self.code = code
        self.message = message
        self.request_id = request_id
        self.http_status = http_status
        self.server_date: str | None = None  # the answer's Date header, for clock errors

    @property
    def advice(self) -> str:
        return rule_for(self.code).advice

    @classmethod
    def from_code(
        cls, code: str, message: str, request_id: str = "", http_status: int | None = None
    ) -> ApiError:
        """Build the exception of the class the error table gives `code`."""
        subclass = _BY_CLASS[classify(code)]
        return subclass(code, message, request_id, http_status)


class ThrottledError(ApiError):
    error_class = ErrorClass.THROTTLE


class ClockSkewError(ApiError):
    error_class = ErrorClass.CLOCK


class TransientError(ApiError):
    error_class = ErrorClass.TRANSIENT


class BadRowError(ApiError):
    error_class = ErrorClass.BAD_ROW


class HaltError(ApiError):
    error_class = ErrorClass.HALT


class ServiceActivatingError(ApiError):
    error_class = ErrorClass.WAIT


class OutageError(ApiError):
    """The call never reached the API, or something else answered: pause, don't fail the job."""

    error_class = ErrorClass.OUTAGE


_BY_CLASS: dict[ErrorClass, type[ApiError]] = {
    ErrorClass.THROTTLE: ThrottledError,
    ErrorClass.CLOCK: ClockSkewError,
    ErrorClass.TRANSIENT: TransientError,
    ErrorClass.BAD_ROW: BadRowError,
    ErrorClass.HALT: HaltError,
    ErrorClass.WAIT: ServiceActivatingError,
    ErrorClass.OUTAGE: OutageError,
}
