"""One error hierarchy: each error knows the HTTP status and CLI exit code it maps to."""


class NboError(Exception):
    """Base of every error nbo raises on purpose; the message says what to do next."""

    http_status = 500
    exit_code = 1
    retry_after_s = 1.0  # when a 503 of it may be retried (`Retry-After`)


class DataContractError(NboError):
    """Input data does not follow the data contract (docs/data.md)."""

    http_status = 422
    exit_code = 2


class RedisUnavailableError(NboError):
    """The Redis server could not be started or reached; the API answers 503 with
    `Retry-After: retry_after_s` (rounded up to whole seconds, at least 1)."""

    http_status = 503
    exit_code = 3

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreContentionError(NboError):
    """Too many concurrent writers on one user, or versions switching during a read."""

    http_status = 503
    exit_code = 3
