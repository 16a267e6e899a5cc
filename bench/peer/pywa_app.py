"""bench/e2e's peer: pywa 4.5.0 on Flask, storing every update inline, the way pywa's docs lead a user.

pywa serves GET and POST /webhook on this Flask app: it checks X-Hub-Signature-256 against the app
secret, parses the update and calls the matching handler inside the request. Each handler runs one
INSERT ... ON CONFLICT DO NOTHING and commits, on a psycopg2 connection kept per process and thread.
Messages (and button or list replies, which pywa hands to separate handlers) go to peer_messages,
statuses to peer_statuses (schema.sql).

It runs in its own virtualenv (bench/e2e.py installs pywa there), served by the Procfile's web
command with `webhook.wsgi:app` swapped for `pywa_app:app`.
Environment: DATABASE_URL (postgresql://...), WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN.
"""

import os
import threading

import psycopg2
from flask import Flask
from pywa import WhatsApp
from pywa.types import CallbackButton, CallbackSelection, Message, MessageStatus

INSERT_MESSAGE = (
    "INSERT INTO peer_messages (wamid, sender, sent_at) VALUES (%s, %s, %s) ON CONFLICT (wamid) DO NOTHING"
)
INSERT_STATUS = (
    "INSERT INTO peer_statuses (wamid, status, status_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (wamid, status) DO NOTHING"
)

app = Flask(__name__)
wa = WhatsApp(
    server=app,
    webhook_endpoint="/webhook",
    verify_token=os.environ["WHATSAPP_VERIFY_TOKEN"],
    app_secret=os.environ["WHATSAPP_APP_SECRET"],
)
_local = threading.local()


def store(sql: str, params: tuple[object, ...]) -> None:
    """Run one statement and commit, on this thread's connection (opened on first use, after any fork)."""
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        connection = _local.connection = psycopg2.connect(os.environ["DATABASE_URL"])
    with connection, connection.cursor() as cursor:  # leaving `with connection` commits
        cursor.execute(sql, params)


@wa.on_message()
@wa.on_callback_button()
@wa.on_callback_selection()
def store_message(_: WhatsApp, message: Message | CallbackButton | CallbackSelection) -> None:
    store(INSERT_MESSAGE, (message.id, message.from_user.wa_id or message.from_user.bsuid, message.timestamp))


@wa.on_message_status()
def store_status(_: WhatsApp, status: MessageStatus) -> None:
    store(INSERT_STATUS, (status.id, status.status.value, status.timestamp))
