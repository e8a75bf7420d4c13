"""The HTTP side port on aiohttp, in the service's own event loop: the
routes, one seam where every error becomes an answer, TLS, and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from authsvc.domain.deps import Deps
from authsvc.doors.http_status import INTERNAL, OAuthError, bad_request, oauth_error
from authsvc.errors import AuthError
from authsvc.metrics import Metrics

from . import _endpoints as ep
from ._request import MAX_FORM_BYTES, HttpFailure, call_info, client_auth, read_form
from ._tls import ReloadingContext
from ._token import GRANTS, TokenRequest

log = logging.getLogger(__name__)


class _NoDetails(logging.Filter):
    """aiohttp logs a request it cannot parse with the parser's exception,
    which quotes the request's bytes (a header could hold a secret): keep the
    line, drop the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True


_protocol_log = logging.getLogger(__name__ + ".protocol")
_protocol_log.addFilter(_NoDetails())

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: How often the TLS files are looked at for a new certificate.
TLS_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class HttpConfig:
    """What the side port needs from the settings."""

    issuer: str
    #: The base URL clients use; None: derived from the bound address.
    public_url: str | None = None
    #: The listener's certificate, key and client CA (None: plaintext).
    tls: tuple[Path, Path, Path | None] | None = None
    #: A client CA is configured: clients may authenticate with certificates.
    mtls: bool = False
    bound_tokens: bool = True


def _error_response(error: OAuthError) -> web.Response:
    return ep.json_answer(error.body(), error.status, error.headers)


def _middleware(metrics: Metrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def seam(request: web.Request, handler: Handler) -> web.StreamResponse:
        """AuthError -> its answer; anything unexpected -> a bare 500."""
        started = time.perf_counter()
        route = request.match_info.route.resource
        name = "HTTP " + (route.canonical if route is not None else "unmatched")
        try:
            response = await handler(request)
        except HttpFailure as failure:
            response = _error_response(failure.error)
        except AuthError as exc:
            response = _error_response(oauth_error(exc))
        except web.HTTPException as exc:  # aiohttp's own: 404, 405, ...
            metrics.observe(name, str(exc.status), time.perf_counter() - started)
            raise
        except Exception:  # the seam where nothing may escape with details
            log.exception("unexpected error in %s", name)
            response = _error_response(INTERNAL)
        metrics.observe(name, str(response.status), time.perf_counter() - started)
        return response

    return seam


async def _default_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Nothing here may be cached unless its handler says so: health, metrics
    # and every OAuth answer are of the moment.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


class HttpDoor:
    """The public side port (OAuth 2.0, the public keys, health) and, when
    configured apart, the metrics port."""

    def __init__(self, deps: Deps, metrics: Metrics, ready: Callable[[], bool], config: HttpConfig) -> None:
        self._deps = deps
        self._metrics = metrics
        self._ready = ready
        self._config = config
        self._runners: list[web.AppRunner] = []
        self._metadata = b"{}"
        self._tls = ReloadingContext(*config.tls) if config.tls is not None else None
        self._watch: asyncio.Task[None] | None = None
        self.port = 0
        self.metrics_port = 0

    async def start(self, listen: str, metrics_listen: str | None = None) -> int:
        """Listen on ``listen``, and serve /metrics on ``metrics_listen``
        instead when given; return the public port."""
        config = self._config
        public = self._app(metrics=metrics_listen is None, oauth=True)
        self.port = await self._serve(public, listen)
        if metrics_listen is not None:
            self.metrics_port = await self._serve(self._app(metrics=True, oauth=False), metrics_listen)
        else:
            self.metrics_port = self.port
        host = listen.rpartition(":")[0]
        scheme = "https" if self._tls is not None else "http"
        base = config.public_url or f"{scheme}://{host}:{self.port}"
        self._metadata = json.dumps(ep.metadata(config.issuer, base, config.mtls, config.bound_tokens)).encode()
        if self._tls is not None:
            self._watch = asyncio.create_task(self._follow_tls_files(), name="http-tls")
        return self.port

    async def _follow_tls_files(self) -> None:
        while True:
            await asyncio.sleep(TLS_CHECK_SECONDS)
            await self.reload_tls()

    async def reload_tls(self) -> bool:
        """Take changed TLS files now, if they are consistent (what the
        watcher does every second); True when it did."""
        if self._tls is None:
            return False
        return await asyncio.to_thread(self._tls.reload)  # file reads off the loop

    @property
    def tls_reloads(self) -> int:
        return self._tls.reloads if self._tls is not None else 0

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _serve(self, app: web.Application, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        # No access log: a request line can carry a token in its query.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0, logger=_protocol_log
        )
        await runner.setup()
        self._runners.append(runner)
        context = self._tls.context if self._tls is not None else None
        site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=context, backlog=512)
        await site.start()
        bound = runner.addresses[-1]
        return int(bound[1])

    def _app(self, *, metrics: bool, oauth: bool) -> web.Application:
        app = web.Application(client_max_size=MAX_FORM_BYTES, middlewares=[_middleware(self._metrics)])
        app.on_response_prepare.append(_default_headers)
        routes = [
            web.get("/livez", ep.probe(lambda: True)),  # the loop answered: the process is alive
            web.get("/readyz", ep.probe(self._ready)),
            web.get("/healthz", ep.probe(self._ready)),  # the older name of /readyz
        ]
        if metrics:
            routes.append(web.get("/metrics", self._metrics_page))
        if oauth:
            deps = self._deps
            routes += [
                web.get(ep.PATHS["jwks"], self._jwks),
                web.options(ep.PATHS["jwks"], self._preflight),
                web.get(ep.PATHS["metadata"], self._metadata_page),
                web.options(ep.PATHS["metadata"], self._preflight),
                web.post(ep.PATHS["token"], self._token),
                web.post(ep.PATHS["introspect"], functools.partial(ep.introspect_endpoint, deps)),
                web.post(ep.PATHS["revoke"], functools.partial(ep.revoke_endpoint, deps)),
            ]
        app.add_routes(routes)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = await read_form(request)
        grant_type = form.one("grant_type")
        if not grant_type:
            raise HttpFailure(bad_request("grant_type is required"))
        handler = GRANTS.get(grant_type)
        if handler is None:
            raise HttpFailure(bad_request("grant_type not supported", "unsupported_grant_type"))
        call = call_info(request)
        return ep.json_answer(await handler(TokenRequest(self._deps, form, client_auth(request, form, call), call)))

    async def _jwks(self, request: web.Request) -> web.Response:
        headers = {**ep.CORS, **ep.PUBLIC_CACHE, "Content-Type": "application/jwk-set+json"}
        return web.Response(body=self._deps.live.keyring.jwks_json.encode(), headers=headers)

    async def _metadata_page(self, request: web.Request) -> web.Response:
        headers = {**ep.CORS, **ep.PUBLIC_CACHE, "Content-Type": "application/json"}
        return web.Response(body=self._metadata, headers=headers)

    async def _preflight(self, request: web.Request) -> web.Response:
        """A CORS preflight (Fetch standard): any origin may GET."""
        return web.Response(status=204, headers=ep.PREFLIGHT)

    async def _metrics_page(self, request: web.Request) -> web.Response:
        body = self._metrics.render().encode()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
