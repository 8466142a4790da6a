"""Entry points of the long-running processes: the web service under gunicorn, and the queue worker."""

from __future__ import annotations

import logging

from webhooks.settings import Settings


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def serve_app(app, host: str, port: int, workers: int, name: str) -> None:
    """A WSGI app under gunicorn (a production server), in the foreground."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "threads": 4, "timeout": 60,
                               "control_socket_disable": True, "accesslog": "-", "proc_name": name}.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()


def serve(settings: Settings, workers: int | None = None) -> None:
    """The webhook service under gunicorn on CLESC_SERVICE_HOST:CLESC_SERVICE_PORT."""
    from webhooks.app import create_app

    configure_logging()
    serve_app(create_app(settings), settings.service_host, settings.service_port, workers or settings.workers,
              "clesc-serve")


def work(settings: Settings) -> None:
    """A Huey consumer running the judge jobs, the sweep and the periodic reconciliation."""
    from webhooks.loop import JudgeLoop
    from webhooks.queue import JobQueue
    from webhooks.store import Store

    configure_logging()
    store = Store(settings.database_url)
    queue = JobQueue.from_settings(settings, loop_factory=lambda: JudgeLoop(settings, store, settings.ls_client()))
    queue.sweep(0)  # events left pending by a worker that died
    consumer = queue.huey.create_consumer(workers=settings.workers, worker_type="thread", periodic=True,
                                          flush_locks=True, check_worker_health=True)
    consumer.run()
