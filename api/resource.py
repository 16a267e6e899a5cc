"""What every resource of the API shares: authentication, the tenant's session per request, ETags.

Every route is on the one blueprint `v1`, whose before-request hook authenticates the key and opens the
request's TenantSession: no view runs without both, and the OpenAPI description marks each operation as
needing the key.
"""

import hmac
from typing import Any, cast

from apiflask import APIBlueprint, HTTPTokenAuth, abort
from flask import Response, current_app, g, request
from pydantic import BaseModel
from werkzeug.http import generate_etag

from api.keys import Principal, authenticate
from api.scope import TenantSession
from models.db import Database

PREFIX = "/api/v1"
DB_KEY = "wahooks.db"
# The answer a PATCH documents for check_if_match's refusal.
IF_MATCH_REFUSED = {412: "If-Match names another version than the current one"}

auth = HTTPTokenAuth(scheme="Bearer", description="a tenant's API key, from `wahooks api-keys create`")


def _verify(token: str) -> Principal | None:
    return authenticate(database(), token) if token else None


auth.verify_token(_verify)


def database() -> Database:
    db: Database = current_app.extensions[DB_KEY]
    return db


def tenant_session() -> TenantSession:
    """The request's session, which sees the key's tenant only (api/scope.py)."""
    session: TenantSession = g.tenant_session
    return session


# Every operation of the API: one blueprint, so that its one before-request hook guards them all (apiflask
# documents a blueprint-wide auth for the first blueprint that uses an auth object only). The resource modules
# (api/catalogs.py, ...) add their routes to it.
v1 = APIBlueprint("v1", __name__, url_prefix=PREFIX)


@v1.before_request
@v1.auth_required(auth)
def open_tenant_session() -> None:
    """Runs after the key was accepted: the request's session sees the key's tenant only."""
    principal = cast(Principal | None, auth.current_user)  # what _verify returned for this request
    if principal is None:  # an OPTIONS request, which Flask-HTTPAuth lets through unauthenticated
        return  # and Flask answers with the allowed methods, running no view
    g.tenant_session = TenantSession(database().engine, principal.tenant_id)


@v1.before_request
def body_is_an_object() -> None:
    """Every body the API reads is a JSON object: anything else (not JSON, null, a list) is a 400 here, since
    apiflask reads a JSON null as an empty object (which a PATCH would take as "change nothing")."""
    if request.method in ("POST", "PATCH") and not isinstance(request.get_json(silent=True), dict):
        abort(400, "the body must be a JSON object")


def etag_of(representation: BaseModel) -> str:
    """The ETag a GET of this representation answers with (the hash of the same bytes)."""
    response = cast(
        Response, current_app.json.response(representation.model_dump(mode="json", by_alias=True))
    )
    body = response.get_data()
    return generate_etag(body)


def check_if_match(current: BaseModel) -> None:
    """A PATCH with If-Match is refused (412) unless the resource is still what the client last read."""
    wanted = request.if_match
    if not wanted:
        return
    tag = etag_of(current)
    if not (wanted.star_tag or any(hmac.compare_digest(tag, t) for t in wanted.as_set())):
        abort(412, "the resource changed since you read it: GET it again", {"etag": tag})


def first_or_404(found: Any, what: str) -> Any:
    if found is None:
        abort(404, f"no {what} here")
    return found
