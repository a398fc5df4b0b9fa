"""The OpenAPI 3.1 document of the registry API (``bot/api/server.py``), served at
``GET /api/v1/openapi.json``.

Assembled, not restated: every schema in it is pydantic's JSON schema of a model the API itself
uses, the requests' (``bot/api/schemas.py``, the check the server makes before anything reaches
the services) and the answers' (``bot/api/answers.py``, what the routes and the error middleware
send), made in one ``models_json_schema`` call. Written here by hand is only what no model knows:
the route table (paths, parameters, summaries, which body and which answer, links), the bearer
scheme, the error answers the routes share, the limits of the running server (``KEZEK_API_MAX_ROWS``,
the birth years its clock allows) and that a clock move is exactly one of its two shapes.

``tests/bot/api/test_api.py`` validates the document, checks that it lists exactly the routes the
application has, that every answer conforms and that every body it allows the server takes;
``tests/bot/api/test_api_schemathesis.py`` (slow) fuzzes the live API against it."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.api import answers
from bot.api import schemas as requests
from bot.config import Settings
from services.documents import MAX_FILES
from storage.vocab import DocumentStatus

API_VERSION = "1.0.0"
REF_TEMPLATE = "#/components/schemas/{model}"
DEFAULT_MAX_ROWS: int = Settings.model_fields["api_max_rows"].default  # KEZEK_API_MAX_ROWS unset

# Row ids in a path or a query: positive 64-bit integers (bot.api.routes._row_id refuses more).
ROW_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": ROW_ID, "description": "The referral's id."}
LANG_HEADER = {"name": "Accept-Language", "in": "header", "required": False,
               "schema": {"type": "string", "examples": ["kk", "ru"]},
               "description": "The language of error messages: ru (default) or kk."}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(answers.Error)}}}


def _shared_responses() -> dict[str, Any]:
    """The error answers the routes share (their body: ``answers.Error``), by name."""
    return {
        "BadJson": _error("The body is not JSON (error: bad_json)."),
        "Unauthorized": {**_error("No token, a malformed Authorization header or a wrong token "
                                  "(error: unauthorized)."),
                         "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                                          "description": 'Bearer realm="kezek"'}}},
        "Forbidden": _error("The server has no token configured: the API is off (error: api_not_configured)."),
        "TooLarge": _error("The body is larger than the server's limit (error: body_too_large; a single object: "
                           "64 KiB), or an array has more items than maxItems (error: too_many_rows); details.max "
                           "gives the limit."),
        "Invalid": _error("The body has the wrong shape (not_array, not_object) or bad objects; nothing was "
                          "written. errors[] lists each with index, field and reason."),
        "TooMany": {**_error("Too many wrong tokens from this address: locked out for a while "
                             "(error: too_many_attempts)."),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}},
        "NotFound": _error("The application or referral does not exist (or an unknown route)."),
        "Conflict": _error("The rules forbid it now (e.g. referral_not_active, showup_deadline_passed, "
                           "documents_pending, documents_not_pending); nothing was written."),
        "Internal": _error("Unexpected failure (error: internal); nothing was written."),
    }


_BODY_ERRORS = {"400": "BadJson", "413": "TooLarge", "422": "Invalid"}
_AUTH_ERRORS = {"401": "Unauthorized", "403": "Forbidden", "429": "TooMany", "500": "Internal"}
_RULE_ERRORS = {"404": "NotFound", "409": "Conflict"}


# --- the route table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """One operation. Its 200 answer is ``answer`` (JSON) or ``content`` (anything else); its body
    is ``body`` (one object; a model, or the name of a schema composed below) or ``rows`` (an
    array of them, at most ``KEZEK_API_MAX_ROWS``). Every route but a public one also lists the
    shared errors (400, 413, 422 with a body; 401, 403, 429, 500), and ``errors`` adds 404 or 409."""

    method: Literal["get", "post"]
    path: str
    op_id: str
    tag: str
    summary: str
    ok: str  # the 200 answer's description
    answer: type[answers.Answer] | None = None
    content: dict[str, Any] | None = None
    body: type[BaseModel] | str | None = None
    rows: type[BaseModel] | None = None
    body_text: str = ""
    errors: tuple[str, ...] = ()
    other: dict[str, tuple[type[answers.Answer], str]] = field(default_factory=dict)  # status: (body, description)
    params: tuple[dict[str, Any], ...] = ()
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    public: bool = False


def _link(operation: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: a value of the 200 answer feeds ``operation``."""
    return {"operationId": operation, "parameters": parameters}


_REFERRAL_OF = "$response.body#/referral/id"
_TO_APPLICATION = {"getApplication": _link("getApplication", number="$response.body#/referral/application")}
_BINARY = {m: {"schema": {"type": "string", "contentMediaType": m}}
           for m in ("image/jpeg", "image/png", "application/pdf")}

ROUTES: tuple[Route, ...] = (
    Route("get", "/health", "health", "service",
          "Liveness: the database answers and the senders are not stuck (no token needed)",
          "The database answers and the senders are not stuck.", answers.Health,
          other={"503": (answers.Health, "The database does not answer, or the senders are stuck.")}, public=True),
    Route("get", "/metrics", "metrics", "service",
          "Prometheus metrics of this process: updates, latency, outbox backlog, deliveries, sender rounds, "
          "scheduled jobs (counts only, no personal data; the token needed like everywhere)",
          "The Prometheus text exposition format (OpenMetrics when the Accept header asks for it).",
          content={"text/plain": {"schema": {"type": "string"}}}),
    Route("get", "/openapi.json", "openapi", "service", "This document (no token needed)", "OpenAPI 3.1",
          content={"application/json": {"schema": {"type": "object"}}}, public=True),
    Route("post", "/districts", "upsertDistricts", "registry", "Upsert districts by code (all or nothing)",
          "All saved.", answers.Upserted, rows=requests.District, body_text="A JSON array of districts."),
    Route("post", "/kindergartens", "upsertKindergartens", "registry",
          "Upsert kindergartens by code (all or nothing)", "All saved.", answers.Upserted,
          rows=requests.Kindergarten, body_text="A JSON array of kindergartens."),
    Route("post", "/applications", "upsertApplications", "registry",
          "Upsert applications by number (all or nothing)", "All saved.", answers.ImportReport,
          rows=requests.Application,
          body_text="A JSON array of applications; numbers and children unique within it."),
    Route("get", "/applications/{number}", "getApplication", "registry",
          "The status of an application: queue, number, offers, referrals", "The status.",
          answers.ApplicationStatus, errors=("404",),
          params=({"name": "number", "in": "path", "required": True,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 40},
                   "description": "The application number; a \"/\" in it may be sent as it is or as %2F."},),
          links={"admitReferral": _link("admit", id=_REFERRAL_OF),
                 "decideReferralDocuments": _link("decideDocuments", id=_REFERRAL_OF),
                 "listReferralDocuments": _link("listDocuments", referral=_REFERRAL_OF)}),
    Route("post", "/seats", "publishSeats", "seats",
          "Publish free seats; they are offered at once to the first in line", "Published.", answers.SeatsResult,
          body=requests.SeatsRequest, errors=("409",),
          links={"getOfferedApplication": _link("getApplication", number="$response.body#/offers/0/application")}),
    Route("get", "/referrals/verify", "verifyReferral", "referrals",
          "A kindergarten checks the code of a referral's QR code: genuine and valid, used, annulled, expired, or "
          "refused (forged or altered)",
          "The verdict; a refused token is answered 200 with state refused, the same whatever the reason.",
          answers.ReferralVerdict,
          other={"422": (answers.Error, "No token given (error: missing_field, field: token).")},
          params=({"name": "token", "in": "query", "required": True,
                   "schema": {"type": "string", "minLength": 1, "pattern": r"\S",
                              "examples": ["AQEMo3cdV0W1x4Y1nB8r2mRtuA"]},
                   "description": "The code of the QR code, or the short code printed beside it "
                                  "(<id>-XXXX-XXXX, typed in any case)."},)),
    Route("post", "/referrals/{id}/admission", "admit", "referrals", "The kindergarten admitted the child (no body)",
          "Admitted: the application is closed.", answers.ReferralAnswer, errors=("404", "409"),
          params=(ID_PARAM,), links=_TO_APPLICATION),
    Route("post", "/referrals/{id}/documents", "decideDocuments", "referrals",
          "Accept or reject the privilege documents of a referral",
          "Decided (rejected: the referral is annulled and the child moves to the general queue).",
          answers.ReferralAnswer, body=requests.DocumentsDecision, errors=("404", "409"), params=(ID_PARAM,),
          links=_TO_APPLICATION),
    Route("get", "/documents", "listDocuments", "referrals",
          f"The review queue: privilege documents parents sent in the chat (at most {MAX_FILES} a referral), "
          "oldest first, at most 500", "The documents.", answers.DocumentList,
          other={"422": (answers.Error, "A bad status or referral (error: invalid_field).")},
          params=({"name": "status", "in": "query", "required": False,
                   "schema": {"type": "string", "enum": [*DocumentStatus.ALL, "all"], "default": "pending"}},
                  {"name": "referral", "in": "query", "required": False, "schema": ROW_ID,
                   "description": "Only this referral's."}),
          links={"getDocumentFile": _link("getDocumentFile", id="$response.body#/documents/0/id")}),
    Route("get", "/documents/{id}/file", "getDocumentFile", "referrals", "A document's file as it was received",
          "The bytes, with the type found on arrival.", content=_BINARY, errors=("404",),
          params=({**ID_PARAM, "description": "The document's id."},)),
    Route("post", "/calendar/days", "setCalendarDays", "calendar",
          "Record operators' calendar days: moved days off, working weekends (all or nothing)", "Saved.",
          answers.CalendarResult, rows=requests.CalendarDay,
          body_text="A JSON array of days, each day at most once."),
    Route("get", "/stats", "stats", "service",
          "Counts by status of applications, seats, offers, referrals, annulments, and the outbox backlog",
          "Statistics.", answers.Stats),
    Route("get", "/outbox", "outbox", "service",
          "The outbox and deliveries by status, what is due, the latest failures (recipients masked)",
          "The report.", answers.OutboxReport),
    Route("post", "/staff/invites", "inviteStaff", "staff",
          "A one-time Telegram link that makes the account opening it first the kindergarten's staff (it sees its "
          "referrals in full and records admissions in the bot); optionally e-mailed", "Invited.",
          answers.StaffInvitation, body=requests.StaffInviteRequest),
    Route("get", "/staff", "listStaff", "staff", "The staff bound to each kindergarten and the invitations not used "
          "yet", "The list, by kindergarten, oldest first.", answers.StaffList,
          other={"422": (answers.Error, "A kindergarten code that is not one (error: invalid_field) or that no "
                                        "kindergarten has (error: unknown_kindergarten).")},
          params=({"name": "kindergarten", "in": "query", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 40, "pattern": requests.CODE_PATTERN},
                   "description": "Only this kindergarten's."},)),
    Route("post", "/staff/revoke", "revokeStaff", "staff",
          "End a staff member's binding: it opens nothing from then on", "Done (ended 0: it had already ended).",
          answers.Ended, body=requests.StaffRevokeRequest),
    Route("post", "/staff/invites/revoke", "revokeStaffInvite", "staff", "Withdraw an invitation not used yet",
          "Done (ended 0: it had been used, withdrawn or had expired).", answers.Ended,
          body=requests.InviteRevokeRequest),
    Route("get", "/sandbox/clock", "getSandboxClock", "sandbox",
          "Sandbox only (KEZEK_SANDBOX=1; 404 otherwise): the test clock", "Now, on the test clock.",
          answers.Clock, errors=("404",)),
    Route("post", "/sandbox/clock", "moveSandboxClock", "sandbox",
          "Sandbox only (404 otherwise): move the test clock forward; every sweep that falls due on the way runs "
          "at its moment (offers expire at 20:00, deadlines annul referrals, stop-lists end)", "Moved.",
          answers.ClockMoved, body="ClockMove", errors=("404",)),
)
TAGS = ("registry", "seats", "referrals", "staff", "calendar", "service", "sandbox")


# --- the schemas, from the models -----------------------------------------------------------------

def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model the table names: requests as the server reads them, answers as it writes them."""
    out: list[tuple[type[BaseModel], JsonSchemaMode]] = [(answers.Error, "serialization")]
    for route in ROUTES:
        for model in (route.rows, route.body):
            if isinstance(model, type) and (model, "validation") not in out:
                out.append((model, "validation"))
        for model in (route.answer, *(answer for answer, _ in route.other.values())):
            if model is not None and (model, "serialization") not in out:
                out.append((model, "serialization"))
    return out


@cache
def _generated() -> tuple[dict[type[Any], dict[str, str]], dict[str, Any]]:
    """(each model's ``$ref``, ``components/schemas``): pydantic's schemas without their titles,
    and the one composed schema: a clock move is exactly one of ``ClockAdvance`` and ``ClockSet``
    (pydantic writes a union as anyOf, which would let a body with both through)."""
    refs, top = models_json_schema(_models(), ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = top["$defs"]
    schemas["ClockMove"] = {
        "type": "object",
        "description": "Exactly one of advance and set. The clock only moves forward, by at most 366 days.",
        "oneOf": [requests.ClockAdvance.model_json_schema(ref_template=REF_TEMPLATE),
                  requests.ClockSet.model_json_schema(ref_template=REF_TEMPLATE)],
    }
    for schema in schemas.values():
        _strip_titles(schema)
    return {model: ref for (model, _), ref in refs.items()}, schemas


def _strip_titles(node: Any) -> None:
    """pydantic's titles (the class and field names again) out of a schema (a property called
    title would stay)."""
    if isinstance(node, dict):
        node.pop("title", None)
        for key, value in node.items():
            for child in value.values() if key == "properties" else (value,):
                _strip_titles(child)
    elif isinstance(node, list):
        for item in node:
            _strip_titles(item)


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    if isinstance(model, str):
        return {"$ref": REF_TEMPLATE.format(model=model)}
    return dict(_generated()[0][model])


# --- the operations -------------------------------------------------------------------------------

def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _request_body(route: Route, max_rows: int) -> dict[str, Any] | None:
    schema: dict[str, Any]
    if route.rows is not None:
        schema = {"type": "array", "items": _ref(route.rows), "maxItems": max_rows}
        text = f"{route.body_text} At most {max_rows} items (KEZEK_API_MAX_ROWS)."
    elif route.body is not None:
        schema, text = _ref(route.body), route.body_text
    else:
        return None
    return {"required": True, "description": text, "content": {"application/json": {"schema": schema}}}


def _responses(route: Route) -> dict[str, Any]:
    ok = _json(_ref(route.answer), route.ok) if route.answer is not None else \
        {"description": route.ok, "content": route.content}
    if route.links:
        ok["links"] = route.links
    out: dict[str, Any] = {"200": ok}
    shared = {} if route.public else {**(_BODY_ERRORS if route.rows or route.body else {}), **_AUTH_ERRORS}
    for status, name in {**shared, **{s: _RULE_ERRORS[s] for s in route.errors}}.items():
        out[status] = {"$ref": "#/components/responses/" + name}
    for status, (model, description) in route.other.items():
        out[status] = _json(_ref(model), description)
    return out


def _operation(route: Route, max_rows: int) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "operationId": route.op_id, "tags": [route.tag],
                          "parameters": [*route.params, LANG_HEADER], "responses": _responses(route)}
    body = _request_body(route, max_rows)
    if body is not None:
        op["requestBody"] = body
    if route.public:
        op["security"] = []
    return op


def openapi(*, max_rows: int = DEFAULT_MAX_ROWS, birth_years: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh dict each call). ``max_rows``: the server's
    KEZEK_API_MAX_ROWS; ``birth_years``: the years seats may be published for now (the server's
    clock), stated as the bounds of ``SeatsRequest.birth_year`` when given."""
    document: dict[str, Any] = json.loads(_document(max_rows, birth_years))
    return document


@lru_cache(maxsize=8)
def _document(max_rows: int, birth_years: tuple[int, int] | None) -> str:
    """The document as JSON text: made once for each server's limits and year (the route is public)."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route, max_rows)
    schemas = copy.deepcopy(_generated()[1])
    if birth_years is not None:
        low, high = birth_years
        schemas["SeatsRequest"]["properties"]["birth_year"].update(minimum=low, maximum=high)
    return json.dumps({
        "openapi": "3.1.0",
        "info": {
            "title": "Kezek registry API",
            "version": API_VERSION,
            "description": "The queue registry feeds Kezek (districts, kindergartens, applications, free "
                           "seats, admissions, privilege documents, calendar days) and reads what Kezek "
                           "decided. JSON in and out; every request that writes is all or nothing. Errors: "
                           "{error, message, errors?}; messages follow Accept-Language (ru | kk).",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in TAGS],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "KEZEK_API_TOKEN (at least 32 characters)."}},
            "schemas": schemas,
            "responses": _shared_responses(),
        },
    }, ensure_ascii=False)
