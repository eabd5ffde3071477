#!/usr/bin/env python3
"""LLM Incident Manager server: ``python server.py [--config PATH] [--check-config]``.

Composition root: reads the configuration, sets up logging, starts the engine (store,
channels, supervised actors) and the gRPC server, and handles signals. The first SIGTERM
or SIGINT stops intake (UNAVAILABLE), lets in-flight sends finish within
``[server] shutdown_grace_secs``, keeps everything else in the store and exits 0 within the
grace plus a moment (a send still stuck then is abandoned: owed again at the next start,
with the same id); a second
signal exits at once (nothing is lost: every acknowledged alert and owed notification is
already committed). If supervision gives up (restart intensity exceeded), it logs why and
exits 1. A bad configuration exits 2 with a message naming the key (so does a ``[server]
host`` that is not a loopback address, unless ``[server] allow_insecure = true``); a port it
cannot listen on exits 3 (checked before the store is touched); a store another server holds exits 4
(at start, or later when a PostgreSQL store's lock was lost and another server took it first).
SIGHUP re-reads the ``[server] tls_*`` files for the connections that follow.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import signal
import sys
import threading
from pathlib import Path

import structlog

from actors.channels.registry import build_channel, enabled_channels
from actors.domain.channel_setup import destination_warnings
from actors.domain.config import ConfigError, Settings, load_settings
from actors.domain.exposure import insecure_exposure, readable_by_others
from actors.domain.routing import routing_warnings
from actors.domain.tokens import load_tokens
from actors.engine import Engine
from actors.formatting.templates import check_rendering, compile_receivers
from actors.logs import announce, configure_logging
from actors.store.lock import StoreInUse
from actors.store.opening import check_store

DEFAULT_CONFIG = Path(__file__).resolve().with_name("config.toml")
EXIT_CONFIG = 2
EXIT_SUPERVISION = 1
EXIT_LISTEN = 3
EXIT_STORE_IN_USE = 4
SWITCH_INTERVAL_SECS = 0.001
#: The collector's thresholds (CPython's default is 700, 10, 10): measured in-process over
#: 10,000 alerts, the default spent ~15 µs per alert in collections and paused every thread up
#: to 37–56 ms in full ones (the indexes of active incidents and recent alert ids are long-lived);
#: these spend ~3 µs and pause at most ~5 ms. Cyclic garbage is still collected, less often.
GC_THRESHOLDS = (10_000, 20, 50)


def read_settings(path: str | None) -> Settings:
    """The settings from ``path``, or from the repository's config.toml, or embedded defaults."""
    if path:
        return load_settings(path)
    return load_settings(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else Settings()


def check_exposure(settings: Settings) -> list[str]:
    """Raise ConfigError naming ``server.host`` when the API would be open to others without
    ``[server] allow_insecure`` or ``[auth] enabled``, naming ``auth.tokens_file`` when auth is
    on and the tokens file is unreadable or invalid; return a warning for each of the store
    and the tokens file that others may read."""
    problem = insecure_exposure(settings)
    if problem:
        raise ConfigError("server.host", problem)
    files = [] if settings.state.url is not None else [(settings.state.path, "[state] path")]
    if settings.auth.enabled:
        load_tokens(settings.auth.tokens_file or "")
        files.append((settings.auth.tokens_file or "", "[auth] tokens_file"))
    return [warning for path, key in files if (warning := readable_by_others(path, key))]


def check_tls(settings: Settings) -> list[str]:
    """Warnings about the ``[server] tls_*`` files (a certificate expiring soon); raises
    ConfigError naming the key of an unusable one."""
    from actors.api.tls import check_tls_files  # imports grpc: only after configure_logging

    return check_tls_files(settings.server)


def check_config(settings: Settings) -> list[str]:
    """Check who could reach the API and the store (its path, or a connection to PostgreSQL),
    say which store and schema version it is, build every enabled channel once (reads its
    secrets, its receivers' too) and render every receiver's templates against sample events;
    raises ConfigError on a problem (for a template, naming its receiver, channel and field;
    the routes were checked when the file was read). Creates nothing. Returns warnings about what loads but will not deliver
    (an enabled channel without a destination, a receiver no route names), each naming the key
    to set, about a store file readable by others and about a TLS certificate expiring soon."""
    warnings = check_exposure(settings) + check_tls(settings)
    store = check_store(settings.state, os.environ)
    announce(store, "store_checked")
    for name in enabled_channels(settings.notifications):
        build_channel(name, settings.notifications, os.environ, settings.receivers).close()
    check_rendering(compile_receivers(settings.receivers))
    return warnings + destination_warnings(settings.notifications, settings.receivers) + routing_warnings(settings)


def warn(text: str) -> None:
    announce(f"warning: {text}", "configuration_warning", level="warning", stream=sys.stderr)


def serve(settings: Settings, ready: threading.Event | None = None) -> int:
    # Imported here, after configure_logging: gRPC's C core reads GRPC_VERBOSITY on import.
    from actors.api.server import ApiServer

    log = structlog.get_logger("server")
    for warning in check_exposure(settings) + check_tls(settings):  # ConfigError before listening
        warn(warning)
    # Threads waiting for the GIL (a sender whose reply arrived, a gRPC call) get it within
    # 1 ms instead of CPython's default 5 ms: measured, this bounds latency under load.
    sys.setswitchinterval(SWITCH_INTERVAL_SECS)
    gc.set_threshold(*GC_THRESHOLDS)
    engine = Engine(settings)
    try:  # the port first: a second server on it must fail before it touches the store
        api = ApiServer(engine, settings.server)
    except OSError as error:
        announce(f"cannot serve: {error}", "cannot_serve", level="error", stream=sys.stderr)
        return EXIT_LISTEN
    try:
        engine.start()
    except StoreInUse as error:
        api.stop(0)
        announce(f"cannot serve: {error}", "store_in_use", level="error", stream=sys.stderr)
        return EXIT_STORE_IN_USE
    except BaseException:
        api.stop(0)
        raise
    gc.freeze()  # what start-up made lives as long as the server: full collections skip it
    api.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            log.warning("second_signal_exiting_now", signal=signum)
            os._exit(128 + signum)
        log.info("shutdown_requested", signal=signum)
        engine.stop_intake()
        api.drain()
        stop.set()

    def on_hangup(signum: int, frame: object) -> None:
        log.info("tls_reload_requested" if settings.server.tls else "sighup_ignored_without_tls", signal=signum)
        api.reload_tls()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    announce(f"LLM Incident Manager listening on {settings.server.host}:{api.port}", "listening",
             host=settings.server.host, port=api.port)
    if ready:
        ready.set()
    while not stop.is_set() and not engine.failed.is_set():
        stop.wait(0.5)
    if engine.failed.is_set():
        if not engine.store_taken:
            log.critical("supervision_gave_up", reason=engine.failure_reason)
        api.stop(0)
        engine.stop(grace_secs=0)
        return EXIT_STORE_IN_USE if engine.store_taken else EXIT_SUPERVISION
    engine.stop()
    api.stop(1)
    log.info("stopped")
    return 0


def with_port(settings: Settings, port: int) -> Settings:
    """``settings`` serving on ``port``; ConfigError naming ``--port`` for one out of range."""
    if not 0 <= port < 65536:
        raise ConfigError("--port", f"must be between 1 and 65535 (0 picks a free port), got {port}")
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, grpc_port=port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="TOML configuration (default: config.toml beside server.py)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--port", type=int, metavar="PORT",
                        help="serve on this port instead of [server] grpc_port (replicas sharing one configuration)")
    args = parser.parse_args(argv)
    try:
        settings = read_settings(args.config)
        if args.port is not None:
            settings = with_port(settings, args.port)
        configure_logging(settings.observability)
        if args.check_config:
            for warning in check_config(settings):
                warn(warning)
            announce("configuration OK", "configuration_ok")
            return 0
        return serve(settings)
    except ConfigError as error:
        announce(f"configuration error: {error}", "configuration_error", level="error", stream=sys.stderr,
                 key=error.key)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
