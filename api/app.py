"""The API's WSGI app (apiflask): its resources under /api/v1, the OpenAPI description generated from their
schemas at /api/v1/openapi.json, and interactive docs at /api/v1/docs."""

from typing import Any

from apiflask import APIFlask
from flask import Response, g, request
from werkzeug.routing import IntegerConverter

from api import analytics, catalogs, customers, errors, orders  # noqa: F401 (they add the routes)
from api.pages import BIGINT
from api.resource import DB_KEY, PREFIX, v1
from api.scope import TenantSession
from models.db import Database
from runtime.config import database_url


class Id(IntegerConverter):
    """`<int:...>` in the API's paths. An id past what a BIGINT column holds cannot exist, so it is read as 0,
    which no row has either: its answer is the 404 of any missing id, not a database error. (Bounds on the
    converter itself would make werkzeug answer 405 for such a path.)"""

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number < BIGINT else 0


# The docs group operations by resource: the first segment of each path after /api/v1.
TAGS = {
    "catalogs": "Catalogs and products",
    "products": "Catalogs and products",
    "orders": "Orders",
    "customers": "Customers and conversations",
    "analytics": "Analytics",
}
TITLE = "wahooks business API"
VERSION = "1.0.0"
DESCRIPTION = """A business's own data as the webhook stored it: catalogs and products (read and write),
orders and the status a back office sets, conversations by customer, customers, and daily analytics.

Every request needs `Authorization: Bearer <key>`, a key made for one tenant with `wahooks api-keys create`;
it sees and changes that tenant's data only. Lists are newest or oldest first as each says, a page at a time:
pass a page's `next_cursor` as `cursor` for the next one. Every GET answers with an `ETag`; send it back as
`If-None-Match` to get 304 when nothing changed, and as `If-Match` on a PATCH to refuse (412) a change made
meanwhile. Errors are one object: `status`, `code`, `message`, `detail`. Money is a decimal string."""


def create_app(db: Database | None = None) -> APIFlask:
    app = APIFlask(
        __name__,
        title=TITLE,
        version=VERSION,
        spec_path="/openapi.json",
        docs_path="/docs",
        openapi_blueprint_url_prefix=PREFIX,
    )
    app.description = DESCRIPTION
    # Ids are BIGINT: a larger number in a path is a 404, not a database error.
    app.url_map.converters["int"] = Id
    app.config["AUTO_404_RESPONSE"] = True
    if db is None:
        db = Database(database_url())
        db.check_schema()
    app.extensions[DB_KEY] = db
    errors.install(app)
    app.register_blueprint(v1)  # with the routes api/catalogs.py, orders.py, ... added to it
    app.spec_processor(_finish_description)

    @app.after_request
    def conditional(response: Response) -> Response:
        """Every GET answers with an ETag, and 304 to an If-None-Match that still matches it."""
        if request.method == "GET" and response.status_code == 200 and request.path.startswith(PREFIX):
            response.cache_control.private = True
            response.cache_control.no_cache = True
            response.add_etag()
            response.make_conditional(request)
        return response

    @app.teardown_request
    def close_tenant_session(_error: BaseException | None) -> None:
        session: TenantSession | None = g.pop("tenant_session", None)
        if session is not None:
            session.close()

    return app


def _finish_description(spec: dict[str, Any] | str) -> dict[str, Any] | str:
    """What apiflask leaves out: each operation's tag (by resource); that a body, where there is one, is
    required; and the 400 such an operation answers to a body that is not a JSON object at all."""
    assert isinstance(spec, dict)  # the description is served as JSON (apiflask's default SPEC_FORMAT)
    not_json = {
        "description": "the body is not a JSON object",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}},
    }
    for path, operations in spec["paths"].items():
        tag = TAGS[path.removeprefix(PREFIX).split("/")[1]]
        for operation in operations.values():
            operation["tags"] = [tag]
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
                operation["responses"].setdefault("400", not_json)
    spec["tags"] = [{"name": name} for name in dict.fromkeys(TAGS.values())]
    return spec
