"""The OpenAPI 3.1 document of the registry API (``bot/api/server.py``), served at
``GET /api/v1/openapi.json``. The request bodies' schemas come from the pydantic models the server
checks bodies with (``bot/api/schemas.py``); the answers' are kept here beside the handlers.
``tests/test_api.py`` validates it and checks that it lists exactly the routes the application has
and that every answer conforms; ``tests/test_api_schemathesis.py`` (slow) fuzzes the live API
against it."""

from __future__ import annotations

from typing import Any

from bot.api.schemas import request_schemas
from bot.config import Settings
from services.documents import MAX_FILES
from services.errors import MAX_REPORTED_ERRORS
from storage.vocab import DocumentStatus, Privilege

API_VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


MOMENT = {"type": "string", "format": "date-time",
          "description": "ISO 8601; answers are in Asia/Almaty time (+05:00)."}
NULLABLE_MOMENT = {"type": ["string", "null"], "format": "date-time"}
# Row ids: positive 64-bit integers (bot.api.routes._row_id refuses more).
ROW_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
DEFAULT_MAX_ROWS: int = Settings.model_fields["api_max_rows"].default  # KEZEK_API_MAX_ROWS unset
LANGUAGE = {"type": "string", "enum": ["ru", "kk"]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "A stable machine code, e.g. bulk_rejected, "
                      "unauthorized, bad_json, not_array, referral_not_found, outside_claim_window."},
            "message": {"type": "string", "description": "The same in words, in the language of "
                        "Accept-Language (ru | kk; default ru)."},
            "errors": {"type": "array", "items": _ref("ErrorItem"), "maxItems": MAX_REPORTED_ERRORS,
                       "description": f"Validation errors: one per bad object or field, the first "
                                      f"{MAX_REPORTED_ERRORS}."},
            "error_count": {"type": "integer", "minimum": 1,
                            "description": "How many objects were refused in all (errors lists the "
                                           "first ones)."},
            "details": {"type": "object", "description": "Machine-readable parameters of a rule "
                        "violation (e.g. due_at, opens_at, status).", "additionalProperties": True},
        },
    },
    "ErrorItem": {
        "type": "object",
        "required": ["index", "field", "reason", "message"],
        "properties": {
            "index": {"type": ["integer", "null"], "minimum": 0,
                      "description": "Position of the object in the request's array (from 0); null "
                                     "for a request with one object."},
            "field": {"type": ["string", "null"], "description": "The field at fault ('*': the object "
                      "itself); null when the error is not about one field."},
            "reason": {"type": "string", "description": "Machine code: missing_field, invalid_field, "
                       "invalid_iin, iin_birth_date_mismatch, invalid_phone, invalid_email, "
                       "unknown_district, unknown_kindergarten, unknown_profile, duplicate_in_batch, "
                       "child_already_queued, application_closed."},
            "detail": {"type": "string", "description": "A finer reason where there is one: type, "
                       "code, choice, date, datetime, range, too_long, checksum, format, ..."},
            "message": {"type": "string"},
        },
    },
    "Upserted": {"type": "object", "required": ["upserted"],
                 "properties": {"upserted": {"type": "integer", "minimum": 0}}},
    "ImportReport": {
        "type": "object",
        "required": ["created", "updated", "unchanged"],
        "properties": {k: {"type": "integer", "minimum": 0} for k in ("created", "updated", "unchanged")},
    },
    "Offer": {
        "type": "object",
        "required": ["id", "seat_id", "application", "kindergarten", "birth_year", "language", "made_at",
                     "expires_at", "status"],
        "properties": {
            "id": {"type": "integer"},
            "seat_id": {"type": "integer"},
            "application": {"type": "string", "description": "The application number."},
            "kindergarten": {"type": "string"},
            "birth_year": {"type": "integer"},
            "language": LANGUAGE,
            "made_at": MOMENT,
            "expires_at": {**MOMENT, "description": "The end of the claim window the offer lives in."},
            "status": {"type": "string", "enum": ["open", "claimed", "expired", "cancelled"]},
        },
    },
    "Referral": {
        "type": "object",
        "required": ["id", "application", "kindergarten", "group", "language", "via", "privilege", "status",
                     "issued_at", "showup_due_at", "docs_state", "docs_due_at", "closed_at", "annul_reason"],
        "properties": {
            "id": {"type": "integer"},
            "application": {"type": "string"},
            "kindergarten": {"type": "string"},
            "group": {"type": "string"},
            "language": LANGUAGE,
            "via": {"type": "string", "enum": ["offer", "open", "state_order"]},
            "privilege": {"type": "string", "enum": list(Privilege.ALL)},
            "status": {"type": "string", "enum": ["issued", "admitted", "annulled"]},
            "issued_at": MOMENT,
            "showup_due_at": {**MOMENT, "description": "Exclusive: the child must be admitted before it."},
            "docs_state": {"type": "string",
                           "enum": ["not_required", "pending", "accepted", "rejected", "missed"]},
            "docs_due_at": {**NULLABLE_MOMENT, "description": "Privilege documents due before it."},
            "closed_at": NULLABLE_MOMENT,
            "annul_reason": {"type": ["string", "null"], "enum": ["no_show", "docs_missed", "docs_rejected", None]},
        },
    },
    "ApplicationStatus": {
        "type": "object",
        "required": ["number", "status", "state", "district", "birth_year", "queue_number", "offers",
                     "referral", "referrals"],
        "properties": {
            "number": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "referred", "admitted", "removed", "withdrawn"]},
            "state": {"type": "string", "enum": ["waiting", "stop_listed", "offer_open", "referred", "admitted",
                                                 "removed", "withdrawn"]},
            "district": {"type": "string", "description": "The queue: district code ..."},
            "birth_year": {"type": "integer", "description": "... and the child's birth year."},
            "language": LANGUAGE,
            "privilege": {"type": "string", "enum": list(Privilege.ALL)},
            "docs_state": {"type": "string"},
            "queue_number": {"type": ["integer", "null"], "minimum": 1,
                             "description": "1 + waiting applications ahead; null unless waiting."},
            "stoplist_until": {**NULLABLE_MOMENT, "description": "While stop-listed: no offers, no claims."},
            "missed_referrals": {"type": "integer"},
            "preferred_kindergartens": {"type": "array", "items": {"type": "string"}},
            "submitted_at": MOMENT,
            "offers": {"type": "array", "items": _ref("Offer"), "description": "Open offers."},
            "referral": {"oneOf": [_ref("Referral"), {"type": "null"}],
                         "description": "The live referral (issued or admitted)."},
            "referrals": {"type": "array", "items": _ref("Referral"),
                          "description": "Every referral of the application, the latest first."},
        },
    },
    "SeatsResult": {
        "type": "object",
        "required": ["seats", "private", "offers"],
        "properties": {
            "seats": {"type": "array", "items": {"type": "integer"}, "description": "Ids of the new seats."},
            "private": {"type": "boolean", "description": "A private kindergarten under the state order: "
                        "the seats are open at once to every waiting child of the district aged 3+."},
            "offers": {"type": "array", "items": _ref("Offer"), "description": "The offers made at once."},
        },
    },
    "ReferralAnswer": {"type": "object", "required": ["referral"], "properties": {"referral": _ref("Referral")}},
    "ReferralVerdict": {
        "type": "object",
        "required": ["state", "genuine", "valid", "referral", "message"],
        "properties": {
            "state": {"type": "string", "enum": ["valid", "admitted", "annulled", "expired", "refused"],
                      "description": "valid: genuine, issued, no deadline passed: the child may be admitted; "
                                     "admitted: genuine but used; annulled: genuine but annulled; expired: "
                                     "genuine but a deadline passed (it will be annulled); refused: not a "
                                     "genuine Kezek referral (forged, altered, incomplete, or naming no "
                                     "referral): one answer whatever the reason."},
            "genuine": {"type": "boolean", "description": "false only when refused."},
            "valid": {"type": "boolean", "description": "true only when state is valid."},
            "referral": {"oneOf": [{"type": "null"}, _ref("VerifiedReferral")],
                         "description": "What to check at the door; null when refused."},
            "message": {"type": "string", "description": "The verdict in words, in the language of "
                        "Accept-Language (ru | kk; default ru)."},
        },
    },
    "VerifiedReferral": {
        "type": "object",
        "required": ["id", "application", "child_iin_masked", "kindergarten", "group", "status", "issued_at",
                     "valid_until", "docs_state", "docs_due_at", "closed_at", "annul_reason"],
        "properties": {
            "id": {"type": "integer"},
            "application": {"type": "string", "description": "The application number."},
            "child_iin_masked": {"type": "string", "description": "The child's IIN, masked: its first and last "
                                 "two digits (never the full IIN, nor a phone or an e-mail)."},
            "kindergarten": {"type": "object", "required": ["code", "name_ru", "name_kk", "address"],
                             "properties": {"code": {"type": "string"}, "name_ru": {"type": "string"},
                                            "name_kk": {"type": "string"}, "address": {"type": "string"}}},
            "group": {"type": "object", "required": ["name", "language", "birth_year"],
                      "properties": {"name": {"type": "string"}, "language": LANGUAGE,
                                     "birth_year": {"type": "integer"}}},
            "status": {"type": "string", "enum": ["issued", "admitted", "annulled"]},
            "issued_at": MOMENT,
            "valid_until": {**MOMENT, "description": "The show-up deadline (exclusive): the child must be "
                            "admitted before it."},
            "docs_state": {"type": "string", "enum": ["not_required", "pending", "accepted", "rejected",
                                                      "missed"]},
            "docs_due_at": {**NULLABLE_MOMENT, "description": "A privilege referral's documents deadline."},
            "closed_at": {**NULLABLE_MOMENT, "description": "When it was admitted or annulled."},
            "annul_reason": {"type": ["string", "null"], "enum": ["no_show", "docs_missed", "docs_rejected", None]},
        },
    },
    "Document": {
        "type": "object",
        "required": ["id", "referral", "application", "status", "mime", "size", "pages", "received_at"],
        "properties": {
            "id": {"type": "integer"},
            "referral": {"type": "integer", "description": "The referral's id."},
            "application": {"type": "string", "description": "The application number."},
            "status": {"type": "string", "enum": list(DocumentStatus.ALL),
                       "description": "pending: waiting for a decision; closed: the referral ended without one."},
            "mime": {"type": "string", "enum": ["image/jpeg", "image/png", "application/pdf"],
                     "description": "Found from the file's bytes on arrival."},
            "size": {"type": "integer", "description": "Bytes."},
            "pages": {"type": "integer", "minimum": 1},
            "width": {"type": ["integer", "null"]},
            "height": {"type": ["integer", "null"]},
            "sha256": {"type": "string"},
            "received_at": MOMENT,
            "due": {**NULLABLE_MOMENT, "description": "The referral's documents deadline (exclusive)."},
            "decided_at": NULLABLE_MOMENT,
            "reason": {"type": ["string", "null"], "description": "A rejection's reason code (or the "
                       "annulment's, for closed documents)."},
            "note": {"type": ["string", "null"]},
        },
    },
    "DocumentList": {
        "type": "object",
        "required": ["documents"],
        "properties": {"documents": {"type": "array", "items": _ref("Document")}},
    },
    "CalendarResult": {"type": "object", "required": ["days"], "properties": {"days": {"type": "integer"}}},
    "Counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    "Stats": {
        "type": "object",
        "required": ["applications", "seats", "offers", "referrals", "annulments", "outbox", "backlog"],
        "properties": {
            **{k: _ref("Counts") for k in ("applications", "seats", "offers", "referrals", "annulments",
                                           "outbox")},
            "backlog": {
                "type": "object",
                "properties": {
                    "outbox_pending": {"type": "integer", "description": "Notices not routed yet."},
                    "deliveries": {"type": "object", "additionalProperties": {
                        "type": "object",
                        "properties": {k: {"type": "integer"} for k in
                                       ("pending", "due_now", "oldest_due_seconds", "failed")},
                    }, "description": "Per channel (telegram, email)."},
                },
            },
        },
    },
    "OutboxReport": {
        "type": "object",
        "required": ["outbox", "deliveries", "failed_reasons", "blocked_chats", "failed_latest"],
        "properties": {
            "outbox": _ref("Counts"),
            "deliveries": {"type": "object", "additionalProperties": _ref("Counts")},
            "failed_reasons": _ref("Counts"),
            "waiting_reasons": {**_ref("Counts"), "description": "\"channel: reason\" of pending deliveries a try "
                                "was refused for (e.g. the SMTP server away)"},
            "blocked_chats": {"type": "integer"},
            "failed_latest": {"type": "array", "items": {
                "type": "object",
                "properties": {"delivery": {"type": "integer"}, "kind": {"type": "string"},
                               "channel": {"type": "string"}, "to": {"type": "string", "description": "masked"},
                               "tries": {"type": "integer"}, "reason": {"type": ["string", "null"]}},
            }},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "database"],
        "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]},
                       "database": {"type": "string", "enum": ["ok", "unavailable"]},
                       "senders": {"type": "string", "enum": ["stuck"],
                                   "description": "Only when the senders are stuck: deliveries due for over "
                                                  "5 minutes and no sender round of this process finished "
                                                  "within that time (30 minutes of backlog where no "
                                                  "sender runs in this process)."},
                       "problems": {"type": "array", "items": {"type": "string"},
                                    "description": "What is stuck, for operators (English)."}},
    },
    "Clock": {"type": "object", "required": ["now"], "properties": {"now": MOMENT}},
    "ClockMoved": {
        "type": "object",
        "required": ["now"],
        "properties": {
            "now": MOMENT,
            "sweeps": {"type": "array", "items": {"type": "object", "additionalProperties": True},
                       "description": "The sweeps run at each scheduler edge passed, with what they did."},
        },
        "additionalProperties": True,
    },
}

RESPONSES: dict[str, Any] = {
    "BadJson": _error("The body is not JSON (error: bad_json)."),
    "Unauthorized": {**_error("No token, a malformed Authorization header or a wrong token "
                              "(error: unauthorized)."),
                     "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                                      "description": 'Bearer realm="kezek"'}}},
    "Forbidden": _error("The server has no token configured: the API is off (error: api_not_configured)."),
    "TooLarge": _error("The body is larger than the server's limit (error: body_too_large; a single "
                       "object: 64 KiB), or an array has more items than maxItems (error: too_many_rows); "
                       "details.max gives the limit."),
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


def _answers(ok: dict[str, Any], *extra: str, body: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"200": ok}
    if body:
        out.update({"400": {"$ref": "#/components/responses/BadJson"},
                    "413": {"$ref": "#/components/responses/TooLarge"},
                    "422": {"$ref": "#/components/responses/Invalid"}})
    out.update({"401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "429": {"$ref": "#/components/responses/TooMany"},
                "500": {"$ref": "#/components/responses/Internal"}})
    for code in extra:
        out[code] = {"$ref": "#/components/responses/" + {"404": "NotFound", "409": "Conflict"}[code]}
    return out


def _body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"required": True, "description": description, "content": {"application/json": {"schema": schema}}}


ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": ROW_ID,
            "description": "The referral's id."}
LANG_HEADER = {"name": "Accept-Language", "in": "header", "required": False,
               "schema": {"type": "string", "examples": ["kk", "ru"]},
               "description": "The language of error messages: ru (default) or kk."}


def _op(summary: str, tag: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, public: bool = False, op_id: str) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "operationId": op_id, "tags": [tag],
                          "parameters": [*(params or []), LANG_HEADER], "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if public:
        op["security"] = []
        for code in ("401", "403", "429"):
            responses.pop(code, None)
    return op


def _array_body(item: str, description: str, max_rows: int) -> dict[str, Any]:
    return _body({"type": "array", "items": _ref(item), "maxItems": max_rows},
                 f"{description} At most {max_rows} items (KEZEK_API_MAX_ROWS).")


def _link(operation: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": parameters}


def _linked(answer: dict[str, Any], **links: dict[str, Any]) -> dict[str, Any]:
    """A 200 answer with OpenAPI links: where a value it returns feeds another operation."""
    answer["200"] = {**answer["200"], "links": links}
    return answer


def openapi(*, max_rows: int = DEFAULT_MAX_ROWS, birth_years: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh dict each call). ``max_rows``: the server's
    KEZEK_API_MAX_ROWS; ``birth_years``: the years seats may be published for now (the server's
    clock), stated as the bounds of ``SeatsRequest.birth_year`` when given."""
    schemas = {**SCHEMAS, **request_schemas()}
    if birth_years is not None:
        low, high = birth_years
        schemas["SeatsRequest"]["properties"]["birth_year"].update(minimum=low, maximum=high)
    referral_of = "$response.body#/referral/id"
    paths: dict[str, Any] = {
        "/health": {"get": _op(
            "Liveness: the database answers and the senders are not stuck (no token needed)", "service",
            {"200": _json(_ref("Health"), "The database answers and the senders are not stuck."),
             "503": _json(_ref("Health"), "The database does not answer, or the senders are stuck.")},
            public=True, op_id="health")},
        "/metrics": {"get": _op(
            "Prometheus metrics of this process: updates, latency, outbox backlog, deliveries, sender "
            "rounds, scheduled jobs (counts only, no personal data; the token needed like everywhere)",
            "service",
            _answers({"description": "The Prometheus text exposition format (OpenMetrics when the Accept "
                                     "header asks for it).",
                      "content": {"text/plain": {"schema": {"type": "string"}}}}, body=False),
            op_id="metrics")},
        "/openapi.json": {"get": _op(
            "This document (no token needed)", "service",
            {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
            public=True, op_id="openapi")},
        "/districts": {"post": _op(
            "Upsert districts by code (all or nothing)", "registry",
            _answers(_json(_ref("Upserted"), "All saved.")),
            body=_array_body("District", "A JSON array of districts.", max_rows), op_id="upsertDistricts")},
        "/kindergartens": {"post": _op(
            "Upsert kindergartens by code (all or nothing)", "registry",
            _answers(_json(_ref("Upserted"), "All saved.")),
            body=_array_body("Kindergarten", "A JSON array of kindergartens.", max_rows), op_id="upsertKindergartens")},
        "/applications": {"post": _op(
            "Upsert applications by number (all or nothing)", "registry",
            _answers(_json(_ref("ImportReport"), "All saved.")),
            body=_array_body("Application", "A JSON array of applications; numbers and children unique "
                                            "within it.", max_rows), op_id="upsertApplications")},
        "/applications/{number}": {"get": _op(
            "The status of an application: queue, number, offers, referrals", "registry",
            _linked(_answers(_json(_ref("ApplicationStatus"), "The status."), "404", body=False),
                    admitReferral=_link("admit", id=referral_of),
                    decideReferralDocuments=_link("decideDocuments", id=referral_of),
                    listReferralDocuments=_link("listDocuments", referral=referral_of)),
            params=[{"name": "number", "in": "path", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 40},
                     "description": "The application number; a \"/\" in it may be sent as it is or as %2F."}],
            op_id="getApplication")},
        "/seats": {"post": _op(
            "Publish free seats; they are offered at once to the first in line", "seats",
            _linked(_answers(_json(_ref("SeatsResult"), "Published."), "409"),
                    getOfferedApplication=_link("getApplication", number="$response.body#/offers/0/application")),
            body=_body(_ref("SeatsRequest")), op_id="publishSeats")},
        "/referrals/verify": {"get": _op(
            "A kindergarten checks the code of a referral's QR code: genuine and valid, used, annulled, "
            "expired, or refused (forged or altered)", "referrals",
            _answers(_json(_ref("ReferralVerdict"), "The verdict; a refused token is answered 200 with state "
                                                    "refused, the same whatever the reason."), body=False)
            | {"422": _error("No token given (error: missing_field, field: token).")},
            params=[{"name": "token", "in": "query", "required": True,
                     "schema": {"type": "string", "minLength": 1, "pattern": r"\S",
                                "examples": ["AQEMo3cdV0W1x4Y1nB8r2mRtuA"]},
                     "description": "The code of the QR code (printed beside it too)."}],
            op_id="verifyReferral")},
        "/referrals/{id}/admission": {"post": _op(
            "The kindergarten admitted the child (no body)", "referrals",
            _linked(_answers(_json(_ref("ReferralAnswer"), "Admitted: the application is closed."), "404", "409",
                             body=False),
                    getApplication=_link("getApplication", number="$response.body#/referral/application")),
            params=[ID_PARAM], op_id="admit")},
        "/referrals/{id}/documents": {"post": _op(
            "Accept or reject the privilege documents of a referral", "referrals",
            _linked(_answers(_json(_ref("ReferralAnswer"), "Decided (rejected: the referral is annulled and "
                                                           "the child moves to the general queue)."), "404", "409"),
                    getApplication=_link("getApplication", number="$response.body#/referral/application")),
            params=[ID_PARAM], body=_body(_ref("DocumentsDecision")), op_id="decideDocuments")},
        "/documents": {"get": _op(
            f"The review queue: privilege documents parents sent in the chat (at most {MAX_FILES} a "
            "referral), oldest first, at most 500", "referrals",
            _linked(_answers(_json(_ref("DocumentList"), "The documents."), body=False),
                    getDocumentFile=_link("getDocumentFile", id="$response.body#/documents/0/id"))
            | {"422": _error("A bad status or referral (error: invalid_field).")},
            params=[{"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": [*DocumentStatus.ALL, "all"], "default": "pending"}},
                    {"name": "referral", "in": "query", "required": False,
                     "schema": ROW_ID, "description": "Only this referral's."}],
            op_id="listDocuments")},
        "/documents/{id}/file": {"get": _op(
            "A document's file as it was received", "referrals",
            _answers({"description": "The bytes, with the type found on arrival.",
                      "content": {m: {"schema": {"type": "string", "contentMediaType": m}}
                                  for m in ("image/jpeg", "image/png", "application/pdf")}}, "404", body=False),
            params=[{**ID_PARAM, "description": "The document's id."}], op_id="getDocumentFile")},
        "/calendar/days": {"post": _op(
            "Record operators' calendar days: moved days off, working weekends (all or nothing)", "calendar",
            _answers(_json(_ref("CalendarResult"), "Saved.")),
            body=_array_body("CalendarDay", "A JSON array of days, each day at most once.", max_rows),
            op_id="setCalendarDays")},
        "/stats": {"get": _op(
            "Counts by status of applications, seats, offers, referrals, annulments, and the outbox "
            "backlog", "service", _answers(_json(_ref("Stats"), "Statistics."), body=False), op_id="stats")},
        "/outbox": {"get": _op(
            "The outbox and deliveries by status, what is due, the latest failures (recipients masked)",
            "service", _answers(_json(_ref("OutboxReport"), "The report."), body=False), op_id="outbox")},
        "/sandbox/clock": {
            "get": _op("Sandbox only (KEZEK_SANDBOX=1; 404 otherwise): the test clock", "sandbox",
                       _answers(_json(_ref("Clock"), "Now, on the test clock."), "404", body=False),
                       op_id="getSandboxClock"),
            "post": _op("Sandbox only (404 otherwise): move the test clock forward; every sweep that falls "
                        "due on the way runs at its moment (offers expire at 20:00, deadlines annul "
                        "referrals, stop-lists end)", "sandbox",
                        _answers(_json(_ref("ClockMoved"), "Moved."), "404"),
                        body=_body(_ref("ClockMove")), op_id="moveSandboxClock"),
        },
    }
    return {
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
        "tags": [{"name": n} for n in ("registry", "seats", "referrals", "calendar", "service", "sandbox")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "KEZEK_API_TOKEN (at least 32 characters)."}},
            "schemas": schemas,
            "responses": RESPONSES,
        },
    }
