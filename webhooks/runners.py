"""Entry points of the long-running processes: the web service under waitress, the ML backend under gunicorn,
and the queue worker."""

from __future__ import annotations

import logging

from webhooks.settings import Settings


ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s "%(a)s"'
"""gunicorn's access log without the query string and the referrer (%(r)s, %(q)s, %(f)s): whatever a caller
puts there (a secret, a token) never reaches our logs."""


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def serve_app(app, host: str, port: int, workers: int, name: str) -> None:
    """A WSGI app under gunicorn (a production server), in the foreground."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "threads": 4, "timeout": 60,
                               "control_socket_disable": True, "accesslog": "-", "proc_name": name,
                               "access_log_format": ACCESS_LOG_FORMAT}.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()


def serve_buffered(app, host: str, port: int, threads: int, name: str, *, read_timeout_s: int = 10,
                   max_body_bytes: int = 1_000_000) -> None:
    """A WSGI app under waitress, in the foreground: its I/O loop reads each request whole (headers and
    body) before a thread runs the app, so a client sending slowly holds a socket, never a thread, and
    is dropped after `read_timeout_s` without progress. gunicorn's gthread worker, by contrast, hands a
    connection to a thread as soon as a byte arrives and the thread blocks reading the rest, with no
    read timeout: 16 slow clients held every thread (LS drops a webhook after 1 s)."""
    from waitress import serve as waitress_serve

    waitress_serve(app, host=host, port=port, threads=threads, ident=name, channel_timeout=read_timeout_s,
                   cleanup_interval=max(1, min(30, read_timeout_s // 2)), connection_limit=1000, backlog=1024,
                   # bodies past the service's own limit are refused by waitress (Flask answers 413 below that)
                   max_request_body_size=8 * max_body_bytes, max_request_header_size=64 * 1024,
                   clear_untrusted_proxy_headers=True, expose_tracebacks=False)


def serve(settings: Settings, workers: int | None = None) -> None:
    """The webhook service (waitress) on CLESC_SERVICE_HOST:CLESC_SERVICE_PORT, 4 threads per CLESC_WORKERS."""
    from webhooks.app import create_app

    configure_logging()
    serve_buffered(create_app(settings), settings.service_host, settings.service_port,
                   4 * (workers or settings.workers), "clesc-serve", read_timeout_s=settings.read_timeout_s,
                   max_body_bytes=settings.max_body_bytes)


def work(settings: Settings) -> None:
    """A Huey consumer running the judge jobs, the sweep and the periodic reconciliation."""
    from webhooks.queue import JobQueue
    from webhooks.store import Store
    from webhooks.worker import JudgeLoop

    configure_logging()
    store = Store(settings.database_url)
    queue = JobQueue.from_settings(settings, loop_factory=lambda: JudgeLoop(settings, store, settings.ls_client()))
    queue.sweep(0)  # events left pending by a worker that died (not those waiting out a backoff)
    consumer = queue.huey.create_consumer(workers=settings.workers, worker_type="thread", periodic=True,
                                          check_worker_health=True)
    consumer.run()


def reconcile(settings: Settings, *, enqueue: bool = False, progress=None) -> dict[str, int]:
    """`clesc reconcile`: judge (or with `enqueue`, queue for the workers) what LS holds that the store has
    not processed. ValueError when no project is watched yet."""
    from webhooks.queue import JobQueue
    from webhooks.store import Store
    from webhooks.worker import JudgeLoop

    store = Store(settings.database_url)
    if not store.project_roles():
        raise ValueError("no watched projects in the store; run `clesc setup` first")
    loop = JudgeLoop(settings, store, settings.ls_client())
    return loop.reconcile(enqueue=JobQueue.from_settings(settings) if enqueue else None, progress=progress)
