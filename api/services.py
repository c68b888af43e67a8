"""Everything the routes use, built once per process by the app factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import redis
from fastapi import Depends, Request
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.coalescing import DecisionCoalescer
from api.garbage import freeze_new_long_lived
from api.metrics import Metrics
from decisions.campaigns import CampaignDecisions
from decisions.catalog import OfferCatalog
from decisions.engine import DecisionEngine
from decisions.feedback import FeedbackLog
from decisions.outcome import Decision, DecisionRequest
from decisions.policy import Policy
from features.store.redis_store import RedisFeatureStore
from models.registry import ModelRegistry, ModelVersionError, Promotion
from models.serving import ServingModels
from nbo.async_redis import PipelinedConnection
from nbo.errors import NboError
from nbo.redis_plan import Plan, drive, run, run_blocking
from nbo.redis_server import redis_url
from nbo.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _EngineMetrics:
    """The engine's stage timings and Redis failures, exported as Prometheus metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def stage(self, name: str, seconds: float) -> None:
        self._metrics.stages.labels(name).observe(seconds)

    def redis_error(self) -> None:
        self._metrics.redis_errors.inc()


def api_client(settings: Settings) -> redis.Redis:
    """A client that fails fast: no retries, short timeouts (an outage degrades answers
    instead of stalling them)."""
    return redis.Redis.from_url(
        redis_url(settings), socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s, retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False)


@dataclass
class Services:
    settings: Settings
    client: redis.Redis
    store: RedisFeatureStore
    catalog: OfferCatalog
    registry: ModelRegistry
    engine: DecisionEngine
    feedback: FeedbackLog
    campaigns: CampaignDecisions
    metrics: Metrics
    connection: PipelinedConnection  # the event loop's, for per-user plans
    batch_connection: PipelinedConnection  # the event loop's, for batches' plans
    request_path: anyio.CapacityLimiter | None = field(init=False)  # None: the event loop
    coalescer: DecisionCoalescer | None = field(init=False)
    _reloading: threading.Lock = field(init=False, default_factory=threading.Lock)
    # the promotion whose version failed to load here: not tried again by the polling until
    # another version is promoted or a reload is asked (of any worker)
    _failed: Promotion | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        threads = self.settings.request_threads
        self.request_path = anyio.CapacityLimiter(threads) if threads else None
        self.coalescer = (DecisionCoalescer(self._decide_all)
                          if self.settings.coalesce_decisions and not threads else None)

    async def run(self, plan: Plan[T]) -> T:
        """A per-user request's work (a plan: nbo.redis_plan) on the request path: on the
        event loop by default (NBO_REQUEST_THREADS=0), which its Redis round trips leave
        free for other requests, else on one of that many threads with blocking I/O.

        Not FastAPI's pool of 40 threads: a decision is Python from end to end, and Python
        runs one thread at a time per process, so concurrent decisions only take turns
        with the interpreter lock, and the handovers cost. Measured at saturation
        (docs/benchmarks.md): 3.0 ms of CPU per decision in the pool, 1.8 ms on one
        thread, 1.4-1.6 ms on the loop with blocking Redis calls, 1.2-1.3 ms with its own
        pipelined connection."""
        if self.request_path is None:
            return await drive(self.connection, plan)
        return await anyio.to_thread.run_sync(run, self.client, plan, limiter=self.request_path)

    def run_from_thread(self, plan: Plan[T]) -> T:
        """A batch's plan, run on the worker thread calling this (a batch computes for long
        enough that requests on the event loop must keep their turns), its Redis steps
        sent through the event loop on a pipelined connection of their own: a batch's
        thousands of commands would hold up the replies queued behind them on the
        requests' connection. Cheaper than redis-py's blocking client, which packs and
        parses command by command (measured: 6% of a batch of 1,000, docs/benchmarks.md)."""
        return run_blocking(plan, lambda step: anyio.from_thread.run(
            self.batch_connection.execute, step))

    async def decide(self, request: DecisionRequest) -> Decision:
        """One user's decision on the request path, decided with those asked at the same
        moment (api/coalescing.py) unless NBO_COALESCE_DECISIONS is off."""
        if self.coalescer is not None:
            return await self.coalescer.decide(request)
        return (await self._decide_all([request]))[0]

    async def _decide_all(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        return await self.run(self.engine.decide_plan(requests))

    @classmethod
    def build(cls, settings: Settings) -> Services:
        client = api_client(settings)
        metrics = Metrics()
        store = RedisFeatureStore(client, live_ttl_s=int(settings.live_ttl_days * 86_400),
                                  stream_maxlen=settings.event_log_max)
        catalog = OfferCatalog(client)
        policy = Policy.from_settings(settings)
        engine = DecisionEngine(client, store, catalog, policy,
                                retry_after_s=settings.redis_retry_after_s,
                                observer=_EngineMetrics(metrics))
        url, timeout_s = redis_url(settings), settings.redis_timeout_s
        feedback = FeedbackLog(catalog, policy)
        services = cls(settings, client, store, catalog,
                       ModelRegistry(settings.models_dir, client), engine, feedback,
                       CampaignDecisions(engine, feedback, settings.block_ttl_s), metrics,
                       PipelinedConnection(url, timeout_s), PipelinedConnection(url, timeout_s))
        try:
            services.serve_promoted(services.registry.promotion())  # no reload asked
        except (NboError, redis.RedisError) as error:
            logger.warning("serving without models for now: %s", error)
        return services

    def reload_models(self) -> str:
        """Load the promoted version and swap it in; on any failure the version being
        served stays (ModelVersionError, ModelLoadError: 409). Counted as a reload asked,
        so every other worker tries the promoted version again at its next poll."""
        return self.serve_promoted(self.registry.ask_reload())

    def serve_promoted(self, promotion: Promotion) -> str:
        """Load `promotion`'s version and swap it in (`reload_models`, without asking the
        other workers to reload: what a worker starting does)."""
        version = promotion.version
        if version is None:
            raise NoPromotedModel("no model version is promoted: run `nbo models promote "
                                  "VERSION --models DIR` (or `nbo train`, then promote)")
        try:
            self._serve(version)
        except NboError:  # the version itself: this worker's polling does not load it again
            self._failed = promotion
            raise
        return version

    def _serve(self, version: str) -> None:
        """Swap `version` in unless it is served already; on any failure the version being
        served stays."""
        with self._reloading:
            current = self.engine.models
            if current is None or current.version != version:
                self.engine.models = self._load(version, current)
                freeze_new_long_lived()
                logger.info("serving model version %s", version)
            self._failed = None

    def _load(self, version: str, current: ServingModels | None) -> ServingModels:
        settings = self.settings
        compiled = settings.data_dir / "compiled" if settings.tree_scorer == "compiled" else None
        model = self.registry.get(version)  # verified: ModelVersionError when it is not
        try:
            return ServingModels.load(model, compiled)
        except ModelVersionError:  # a check of its own (trained on other columns): as it says
            raise
        except Exception as error:  # whatever the artifacts hold, the served version stays
            logger.exception("model version %s could not be loaded", version)
            raise ModelLoadError(
                f"model version {version} passed its checks but could not be loaded "
                f"({type(error).__name__}: {error}); still serving "
                f"{current.version if current else 'no model'}: retrain it, or promote "
                "another version") from error

    def follow_promoted(self) -> None:
        """Serve the promoted version if it is not the one served: what each worker does
        every NBO_MODEL_POLL_S, so a promotion (or a reload answered by one worker) reaches
        every worker. A version that fails to load is logged once, not retried until
        another is promoted or a reload is asked (its files mended)."""
        try:
            promotion = self.registry.promotion()
        except redis.RedisError:
            return  # decisions degrade meanwhile; the next poll asks again
        promoted, serving = promotion.version, self.engine.models
        if serving is not None and serving.version == promoted:
            self._failed = None  # served: an earlier failure no longer holds it back
            return
        if promoted is None or promotion == self._failed:
            return
        try:
            self._serve(promoted)
        except redis.RedisError:
            return  # asked again at the next poll
        except NboError as error:  # the version itself: not asked again until it changes
            self._failed = promotion
            logger.warning("not serving the promoted model version %s: %s", promoted, error)
        except Exception:  # a failure no check foresaw: logged whole, once, all the same
            self._failed = promotion
            logger.exception("not serving the promoted model version %s", promoted)

    async def follow_promoted_forever(self, every_s: float) -> None:
        """`follow_promoted` every `every_s` seconds, on a thread (a load takes seconds of
        CPU the event loop must not wait for), until cancelled."""
        await _every(every_s, lambda: anyio.to_thread.run_sync(self.follow_promoted),
                     "following the promoted model version")

    async def log_unlogged_forever(self, every_s: float) -> None:
        """Log the decisions made while Redis was down, every `every_s` seconds once it is
        back, until cancelled: a worker that decides nothing new (its answers all
        remembered, or no traffic) still logs them, so their feedback joins them."""
        await _every(every_s, lambda: self.run(self.engine.log_unlogged_plan()),
                     "logging the decisions made during an outage")

    async def keep_embedded_redis_forever(self, every_s: float) -> None:
        """With no NBO_REDIS_URL, start the embedded server again whenever it is gone, every
        `every_s` seconds, until cancelled: the process that started it (say `nbo train`
        beside a running API) stops it when it exits, and answers would stay degraded."""
        await _every(every_s, lambda: anyio.to_thread.run_sync(redis_url, self.settings),
                     "starting the embedded Redis server again")


async def _every(every_s: float, step: Callable[[], Awaitable[object]], what: str) -> None:
    """`step` every `every_s` seconds until cancelled; a failure is logged, and the next
    turn comes all the same."""
    while True:
        await anyio.sleep(every_s)
        try:
            await step()
        except Exception:  # never let a surprise stop the turns
            logger.exception("%s failed", what)


class NoPromotedModel(NboError):
    http_status = 409


class ModelLoadError(NboError):
    """A verified version whose artifacts would not load."""

    http_status = 409


async def services(request: Request) -> Services:
    """async, though it awaits nothing: FastAPI runs a sync dependency in its thread pool,
    a thread hop per request for one attribute read."""
    built: Services = request.app.state.services
    return built


ServicesDep = Annotated[Services, Depends(services)]
