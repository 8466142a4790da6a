"""Entry points of the long-running processes: the web service under gunicorn, and the queue worker."""

from __future__ import annotations

import logging

from webhooks.settings import Settings


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def serve(settings: Settings, workers: int | None = None) -> None:
    """The webhook service under gunicorn (a production WSGI server), in the foreground."""
    from gunicorn.app.base import BaseApplication

    from webhooks.app import create_app

    configure_logging()
    app = create_app(settings)

    class Service(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"{settings.service_host}:{settings.service_port}",
                "workers": workers or settings.workers,
                "threads": 4,
                "timeout": 30,
                "control_socket_disable": True,
                "accesslog": "-",
                "proc_name": "clesc-serve",
            }.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return app

    Service().run()


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
