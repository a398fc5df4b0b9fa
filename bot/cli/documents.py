"""`kezek documents`: the privilege documents parents sent, for the operator to review."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from bot.cli.base import State, cli, pass_state
from locales import ngettext
from locales.formats import format_datetime, format_deadline, format_size
from locales.names import document_status_text, document_type_text
from services.documents import REJECTION_REASONS
from services.kezek import Kezek
from storage.vocab import DocumentStatus


@cli.group()
def documents() -> None:
    """Privilege documents of a referral."""


@documents.command("accept")
@click.argument("referral", type=int)
@pass_state
def documents_accept(state: State, referral: int) -> None:
    """Confirm the privilege documents."""
    state.run(lambda kz: kz.decide_documents(referral, True, actor="cli"))
    click.echo(state.t("Referral {id}: the privilege documents are accepted.", id=referral))


@documents.command("reject")
@click.argument("referral", type=int)
@click.option("--reason", "reason", type=click.Choice(list(REJECTION_REASONS)), default=None,
              help="Why, for the parent (told in their language): " + ", ".join(REJECTION_REASONS) + ".")
@click.option("--note", default=None, help="The operator's own words for the parent, quoted as they are "
              "(at most 500 characters; needed with --reason other).")
@pass_state
def documents_reject(state: State, referral: int, reason: str | None, note: str | None) -> None:
    """Reject the documents: the referral is annulled, the child moves to the general queue."""
    state.run(lambda kz: kz.decide_documents(referral, False, actor="cli", reason=reason, note=note))
    click.echo(state.t("Referral {id}: the documents are rejected; the referral is annulled and the "
                       "child moved to the general queue.", id=referral))


@documents.command("list")
@click.option("--status", "status", type=click.Choice([*DocumentStatus.ALL, "all"]),
              default=DocumentStatus.PENDING.value,
              show_default=True, help="Which documents: waiting for a decision, decided, or all.")
@click.option("--referral", type=int, default=None, help="Only the documents of this referral.")
@click.option("--json", "as_json", is_flag=True, help="JSON, for a script.")
@pass_state
def documents_list(state: State, status: str, referral: int | None, as_json: bool) -> None:
    """The review queue: privilege documents parents sent in the chat, oldest first."""
    found = state.run(lambda kz: kz.review_documents(status, referral))
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in found], ensure_ascii=False, indent=2, default=_json_moment))
        return
    if not found:
        click.echo(state.t("No documents."))
        return
    lang = state.lang
    for d in found:
        click.echo(state.t("Document {id}: referral {referral}, application {application}, {status}; {type}, {size}, "
                           "{pages}; received {received}, due {due}.", id=d.id, referral=d.referral_id,
                           application=d.application, status=document_status_text(lang, d.status),
                           type=document_type_text(lang, d.mime), size=format_size(lang, d.size),
                           pages=ngettext(lang, "{count} page", "{count} pages", d.pages, count=d.pages),
                           received=format_datetime(lang, d.received_at),
                           due=format_deadline(lang, d.docs_due_at) if d.docs_due_at else "—"))


def _json_moment(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        from services.calendar import ALMATY

        return value.astimezone(ALMATY).isoformat()
    raise TypeError(type(value).__name__)


@documents.command("download")
@click.argument("document", type=int)
@click.option("--out", "out", type=click.Path(dir_okay=True, path_type=Path), default=None,
              help="The file or folder to write (default: kezek-document-ID.EXT here).")
@pass_state
def documents_download(state: State, document: int, out: Path | None) -> None:
    """Write a document's file as it was received."""
    from services.doc_storage import DocumentStoreError

    async def fetch(kz: Kezek) -> Any:
        try:
            return await kz.document_file(document)
        except DocumentStoreError:
            return None

    found = state.run(fetch)
    if found is None:
        click.echo(state.t("The file of document {id} is missing from the document store.", id=document), err=True)
        sys.exit(1)
    info, data = found
    target = out if out is not None else Path(info.filename)
    if target.is_dir():
        target = target / info.filename
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise click.ClickException(state.t("Cannot write the file: {error}", error=type(exc).__name__)) from None
    click.echo(state.t("Document {id} ({type}, {size}) written to {file}.", id=info.id,
                       type=document_type_text(state.lang, info.mime),
                       size=format_size(state.lang, info.size), file=str(target)))
