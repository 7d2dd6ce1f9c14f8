"""django-scim2-server (PyPI, pinned in pyproject.toml) on 127.0.0.1, for tests/push_second.

Run as a script by the fixture (``python djscim.py --port P --db FILE --log FILE``, the bearer
token in ``$DJSCIM_TOKEN``). Everything SCIM here is the package's own: its views, adapters,
filter parser, PATCH engine and ServiceProviderConfig, mounted at ``/scim/v2/`` as its README
says, over a SQLite file of Django's ORM. What this file adds is the deployment around it, as
an operator's Django project would:

- the access check: the package's default lets Django superusers in (sessions); SCIM clients
  send a bearer token, so ``SCIM2_SERVER_AUTH_CHECK`` names ``bearer`` below, a constant-time
  comparison with the token (the package's documented hook for this);
- SQLite opened with a 30 s busy timeout and ``BEGIN IMMEDIATE`` (Django's own options), so
  syncd's concurrent writes wait for each other instead of failing "database is locked";
- ``POST /_test/reset`` (outside the SCIM base URL, with the token) empties the server between
  tests, so one process serves a test worker's tests one after another (a start costs ~2 s);
- a WSGI wrapper that appends ``METHOD PATH STATUS`` per request to ``--log``: the tests count
  what syncd sent (a cycle with no change sends nothing; no ``/Bulk`` where it is not
  announced). It reads nothing and changes nothing.

It is served by Django's own threaded development server (``django.core.servers.basehttp``,
what ``manage.py runserver`` runs), without the autoreloader.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import include, path

TOKEN = os.environ.get("DJSCIM_TOKEN", "")


def reset(request: Any) -> HttpResponse:
    """``POST /_test/reset`` (the token's): every user and group gone, for the next test."""
    if request.method != "POST" or not bearer(request):
        return HttpResponse(status=403)
    from django.contrib.auth.models import Group, User
    from django.db import transaction

    with transaction.atomic():  # (the SCIM rows go with them: on_delete=CASCADE)
        User.objects.all().delete()
        Group.objects.all().delete()
    return HttpResponse(status=204)


urlpatterns = [path("scim/v2/", include("django_scim2_server.urls")), path("_test/reset", reset)]


def bearer(request: Any) -> bool:
    """SCIM2_SERVER_AUTH_CHECK: the request carries the bearer token."""
    sent = request.headers.get("Authorization", "")
    return bool(TOKEN) and hmac.compare_digest(sent.encode(), f"Bearer {TOKEN}".encode())


class Recorder:
    """WSGI middleware: one ``METHOD PATH STATUS`` line per request in ``log``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], log: str) -> None:
        self.app, self.log, self.lock = app, log, threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            query = environ.get("QUERY_STRING")
            line = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}{'?' + query if query else ''} {status.split()[0]}\n"
            with self.lock, open(self.log, "a", encoding="utf-8") as f:
                f.write(line)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, recording)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    if not TOKEN:
        sys.exit("DJSCIM_TOKEN is not set")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="syncd-tests-only-" + os.urandom(8).hex(),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF="__main__",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_scim2_server"],
        MIDDLEWARE=[],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": args.db,
                               "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"}}},
        USE_TZ=True,
        SCIM2_SERVER_AUTH_CHECK="__main__.bearer",
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0, interactive=False)
    run("127.0.0.1", args.port, Recorder(get_wsgi_application(), args.log), ipv6=False, threading=True)


if __name__ == "__main__":
    main()
