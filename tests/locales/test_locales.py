"""The ru/kk catalogs and the locales package: complete, consistent with the code, and rendering well."""

from __future__ import annotations

import datetime as dt
import io
import re
import shlex
import string
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po
from babel.support import Translations

from locales import DOMAIN, compile_catalog, gettext, normalize_language, po_path, translator
from locales.errors import CATCH_ALL, error_lines, error_text, has_error_message
from locales.formats import format_date, format_datetime, format_number
from locales.names import FIELD_NAMES, cause_text, field_text, privilege_text, status_text
from services import errors as E
from services import queue
from services.calendar import ALMATY
from storage.vocab import AppStatus, Privilege
from tests.support import ROOT

POT = ROOT / "locales" / "messages.pot"
README = ROOT / "locales" / "README.md"
LANGS = ("ru", "kk")

# Exactly as documented in locales/README.md (a test checks that the README says this).
EXTRACT_OPTIONS = ("-F babel.cfg -c Translators: -k N_ -k NP_:1,2 -k gettext:2 -k ngettext:2,3 -k __ -k t")


def _read(path: Path, locale: str | None = None):
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def _messages(catalog):
    return [m for m in catalog if m.id]


def _ids(catalog) -> set:
    return {(m.context, m.id) for m in _messages(catalog)}


def _placeholders(text: str) -> set[str]:
    names = set()
    for _literal, field, _spec, _conv in string.Formatter().parse(text):
        if field is not None:
            names.add(re.split(r"[.\[]", field, maxsplit=1)[0])
    return names


def _plain(text: str) -> str:
    """CLDR puts no-break spaces in dates ('2024\u202fг.'); compare with plain ones."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def _catalog(lang: str):
    return _read(po_path(lang), lang)


# --- catalogs ------------------------------------------------------------------------------------

def test_template_is_not_empty() -> None:
    assert len(_messages(_read(POT))) > 50


@pytest.mark.parametrize("lang", LANGS)
def test_plural_forms_come_from_babel(lang: str) -> None:
    catalog = _catalog(lang)
    expected = get_plural(lang)
    assert catalog.num_plurals == expected.num_plurals
    assert catalog.plural_expr == expected.plural_expr
    assert catalog.num_plurals == {"ru": 3, "kk": 2}[lang]


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_translated(lang: str) -> None:
    template = _read(POT)
    catalog = _catalog(lang)
    assert not catalog.fuzzy, f"{lang}: the catalog header is marked fuzzy"
    problems = []
    for msg in _messages(template):
        entry = catalog.get(msg.id, context=msg.context)
        if entry is None:
            problems.append(f"missing: {msg.id!r}")
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {msg.id!r}")
        if msg.pluralizable:
            forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            if len(forms) != catalog.num_plurals or not all(f.strip() for f in forms):
                problems.append(f"plural forms incomplete: {msg.id!r} -> {forms!r}")
        elif not isinstance(entry.string, str) or not entry.string.strip():
            problems.append(f"untranslated: {msg.id!r}")
    stale = _ids(catalog) - _ids(template)
    problems += [f"not in messages.pot (run pybabel update): {mid!r}" for _ctx, mid in sorted(stale, key=str)]
    assert not problems, f"{lang}:\n" + "\n".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_match_the_msgid(lang: str) -> None:
    problems = []
    for msg in _messages(_catalog(lang)):
        ids = msg.id if isinstance(msg.id, tuple) else (msg.id,)
        expected: set[str] = set()
        for source in ids:
            expected |= _placeholders(source)
        forms = msg.string if isinstance(msg.string, tuple) else (msg.string,)
        for index, form in enumerate(forms):
            try:
                got = _placeholders(form)
            except ValueError as exc:
                problems.append(f"[{index}] {ids[0]!r}: not a format string ({exc}): {form!r}")
                continue
            if got != expected:
                problems.append(f"[{index}] {ids[0]!r}: {sorted(got)} != {sorted(expected)}")
    assert not problems, f"{lang}:\n" + "\n".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_compiled_catalog_translates_every_message(lang: str) -> None:
    # Only this language's catalog, without the Russian fallback of Kazakh.
    bare = Translations(fp=io.BytesIO(compile_catalog(lang)), domain=DOMAIN)
    untranslated = []
    for msg in _messages(_read(POT)):
        if msg.pluralizable:
            for n in range(0, 30):
                if bare.ngettext(msg.id[0], msg.id[1], n) in msg.id:
                    untranslated.append((msg.id, n))
                    break
        elif bare.gettext(msg.id) == msg.id:
            untranslated.append(msg.id)
    assert not untranslated, f"{lang}: {untranslated}"


def test_readme_documents_the_extract_command() -> None:
    text = README.read_text(encoding="utf-8")
    assert EXTRACT_OPTIONS in text
    assert "pybabel update -i locales/messages.pot -d locales -D kezek" in text


def test_catalogs_are_up_to_date_with_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "fresh.pot"
    monkeypatch.chdir(ROOT)
    CommandLineInterface().run(["pybabel", "--quiet", "extract", *shlex.split(EXTRACT_OPTIONS),
                                "-o", str(out), "."])
    fresh, committed = _ids(_read(out)), _ids(_read(POT))
    new = sorted((mid for _c, mid in fresh - committed), key=str)
    gone = sorted((mid for _c, mid in committed - fresh), key=str)
    assert not new and not gone, (
        "locales/messages.pot is out of date: run the extract and update commands of "
        f"locales/README.md.\nnew in code: {new}\nno longer in code: {gone}")


# --- errors --------------------------------------------------------------------------------------

def _instance(cls: type[E.KezekError]) -> E.KezekError:
    return cls([]) if issubclass(cls, E.BulkRejected) else cls()


@pytest.mark.parametrize("cls", E.all_error_classes(), ids=lambda c: c.code)
def test_every_error_code_has_its_own_message(cls: type[E.KezekError]) -> None:
    assert has_error_message(cls.code), f"no message for error code {cls.code!r}"
    texts = {}
    for lang in LANGS:
        text = error_text(lang, _instance(cls))
        catch_all = gettext(lang, CATCH_ALL, code=cls.code)
        assert text and text != catch_all
        assert cls.code not in text
        texts[lang] = text
    assert texts["ru"] != texts["kk"]


def test_unknown_code_falls_back_to_the_catch_all() -> None:
    exc = E.KezekError(detail="x")
    exc.code = "strange_new_code"  # an instance attribute: no new subclass for all_error_classes()
    assert not has_error_message("strange_new_code")
    assert "strange_new_code" in error_text("ru", exc)
    assert error_text("ru", exc) != error_text("kk", exc)


_SERVICES = ROOT / "services"
_FIELD_PATTERNS = (
    r"\bp\.\w+\(\s*row\s*,\s*\"([A-Za-z_]+)\"",
    r"\bfield\s*=\s*\"([A-Za-z_*]+)\"",
    r"_with_field\(\s*\w+\s*,\s*\"([A-Za-z_]+)\"",
    r"_minute\(\s*row\s*,\s*\"([A-Za-z_]+)\"",
    r"_no_duplicates\(\s*\w+\s*,\s*\"([A-Za-z_]+)\"",
)
BRIEF_FIELDS = ("number", "child_iin", "birth_date", "phone", "email", "submitted_at", "district",
                "kindergarten", "preferred_kindergartens", "privilege", "language", "count",
                "birth_year", "code", "name_ru", "name_kk", "address", "kind", "languages",
                "twin_group", "profile", "window_open", "window_close")


def _service_fields() -> set[str]:
    found: set[str] = set()
    for path in _SERVICES.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for pattern in _FIELD_PATTERNS:
            found.update(re.findall(pattern, source))
    from services import directory
    found.update(getattr(directory, "PROFILE_FIELDS", {}))
    return found


def test_field_scan_finds_the_known_fields() -> None:
    found = _service_fields()
    assert {"child_iin", "birth_date", "window_close", "preferred_kindergartens"} <= found


@pytest.mark.parametrize("field", sorted(_service_fields() | set(BRIEF_FIELDS)))
def test_every_field_name_is_localized(field: str) -> None:
    assert field in FIELD_NAMES, f"add {field!r} to locales.names.FIELD_NAMES"
    cases = [E.InvalidField(field=field, reason="range", min=1, max=9),
             E.InvalidField(field=field, reason="type"),
             E.MissingField(field=field)]
    for exc in cases:
        texts = {lang: error_text(lang, exc) for lang in LANGS}
        assert texts["ru"] != texts["kk"]
        for lang, text in texts.items():
            if field != "*":
                assert field.lower() not in text.lower(), text
            assert field_text(lang, field) in text
            assert not re.search(r"[A-Za-z]{3,}", text), f"English left in {text!r}"


def _service_reasons(error_name: str) -> set[str]:
    found: set[str] = set()
    for path in _SERVICES.glob("*.py"):
        found.update(re.findall(error_name + r"\([^)]*?reason=\"(\w+)\"", path.read_text(encoding="utf-8")))
    return found


def test_every_invalid_field_reason_has_its_own_message() -> None:
    reasons = _service_reasons("InvalidField")
    assert {"range", "too_long", "choice", "time"} <= reasons
    for lang in LANGS:
        generic = error_text(lang, E.InvalidField(field="count", reason="no_such_reason"))
        for reason in reasons:
            exc = E.InvalidField(field="count", reason=reason, min=1, max=9, options="ru, kk")
            assert error_text(lang, exc) != generic, reason


def test_every_iin_reason_has_its_own_message() -> None:
    reasons = _service_reasons("InvalidIIN")
    assert {"format", "checksum"} <= reasons
    for lang in LANGS:
        generic = error_text(lang, E.InvalidIIN(reason="no_such_reason"))
        for reason in reasons:
            assert error_text(lang, E.InvalidIIN(reason=reason)) != generic


def test_error_texts_read_well() -> None:
    exc = E.InvalidField(field="count", reason="range", min=1, max=500)
    assert error_text("ru", exc) == "Значение поля «количество мест» должно быть от 1 до 500."
    assert "1" in error_text("kk", exc) and "500" in error_text("kk", exc)
    assert "орын саны" in error_text("kk", exc)
    assert error_text("ru", E.MissingField(field="child_iin")) == \
        "Не заполнено обязательное поле «ИИН ребёнка»."
    assert "ЖСН" in error_text("kk", E.MissingField(field="child_iin"))
    too_long = E.InvalidField(field="address", reason="too_long", max=21)
    assert "не более 21 символа" in error_text("ru", too_long)
    not_taught = E.InvalidField(field="language", reason="not_taught", options="ru,kk")
    assert "русский, казахский" in error_text("ru", not_taught)
    assert "орыс тілі, қазақ тілі" in error_text("kk", not_taught)
    mismatch = E.IINBirthDateMismatch(iin_date="2021-03-04", birth_date="2021-03-05")
    assert "4 марта 2021" in _plain(error_text("ru", mismatch))
    assert ".." not in _plain(error_text("ru", mismatch))


@pytest.mark.parametrize(("count", "ru_tail"), [(1, "ошибка в 1 записи."), (3, "ошибки в 3 записях."),
                                                (11, "ошибки в 11 записях.")])
def test_bulk_rejected_renders_its_count(count: int, ru_tail: str) -> None:
    exc = E.BulkRejected([(i, E.MissingField(field="phone")) for i in range(count)])
    assert error_text("ru", exc).endswith(ru_tail)
    assert f"{count} жазбада" in error_text("kk", exc)
    lines = error_lines("ru", exc, first_row=2)
    assert len(lines) == count + 1
    assert lines[1] == "Строка 2: Не заполнено обязательное поле «мобильный телефон»."
    assert error_lines("kk", exc)[1].startswith("1-жол: ")


def test_errors_with_moments_show_almaty_time() -> None:
    stop = E.StopListed(until=dt.datetime(2024, 5, 17, 19, 0, tzinfo=dt.UTC).isoformat())
    # The exclusive end (local midnight) is shown as the last minute of the last day.
    assert "до 17 мая 2024 г., 23:59" in _plain(error_text("ru", stop))
    assert "17 мамыр, 23:59" in _plain(error_text("kk", stop))
    window = E.OutsideClaimWindow(opens_at="2024-05-20T04:00:00+00:00")
    assert "20 мая 2024 г., 09:00" in _plain(error_text("ru", window))
    assert "20 мамыр, 09:00" in _plain(error_text("kk", window))


def test_error_variants_follow_params() -> None:
    assert error_text("ru", E.NotWaiting(status=AppStatus.REFERRED)) == "Ребёнку уже выдано направление."
    assert error_text("ru", E.NotWaiting(status="changed")) != error_text("ru", E.NotWaiting())
    assert error_text("ru", E.TooYoungForPrivate(min_age=3)).endswith("с 3 лет.")
    assert error_text("ru", E.TooYoungForPrivate(min_age=1)).endswith("с 1 года.")
    assert "3 жастан" in error_text("kk", E.TooYoungForPrivate(min_age=3))
    assert "«K-77»" in error_text("kk", E.UnknownKindergarten(field="kindergarten", value="K-77"))


# --- queue moves, states, privileges -------------------------------------------------------------

CAUSES = (queue.ARRIVAL, queue.REFERRAL, queue.RETURNED, queue.PRIVILEGE_DROPPED, queue.CHANGED,
          queue.WITHDRAWN)


@pytest.mark.parametrize("cause", CAUSES)
def test_every_cause_has_its_own_text(cause: str) -> None:
    other = {lang: cause_text(lang, "no_such_cause", 2) for lang in LANGS}
    for n in (1, 2, 5, 21):
        ru, kk = cause_text("ru", cause, n), cause_text("kk", cause, n)
        assert str(n) in ru and str(n) in kk
        assert ru != kk
    assert cause_text("ru", cause, 2) != other["ru"]
    assert cause_text("kk", cause, 2) != other["kk"]


def test_cause_text_uses_russian_plural_forms() -> None:
    # (not "Перед вами выдано…", which reads as "issued in front of you")
    ahead = "Детям, стоящим впереди вас, выдано"
    assert cause_text("ru", queue.REFERRAL, 1) == f"{ahead} 1 направление"
    assert cause_text("ru", queue.REFERRAL, 2) == f"{ahead} 2 направления"
    assert cause_text("ru", queue.REFERRAL, 5) == f"{ahead} 5 направлений"
    assert cause_text("ru", queue.REFERRAL, 11) == f"{ahead} 11 направлений"
    assert cause_text("ru", queue.REFERRAL, 21) == f"{ahead} 21 направление"
    # Form 0 serves 21, 31…: no sentence about one child there.
    assert cause_text("ru", queue.PRIVILEGE_DROPPED, 21) == \
        "21 ребёнок без подтверждённой льготы переведён в общую очередь"
    assert "2 жолдама" in cause_text("kk", queue.REFERRAL, 2)
    assert "детей" in cause_text("ru", queue.RETURNED, 5)


@pytest.mark.parametrize("status", ["waiting", "stop_listed", "offer_open", "referred", "admitted",
                                    "removed", "withdrawn", AppStatus.QUEUED])
def test_status_texts(status: str) -> None:
    unknown = status_text("ru", "no_such_status")
    ru, kk = status_text("ru", status), status_text("kk", status)
    assert ru != kk and ru != unknown and status not in ru and status not in kk


def test_status_with_until() -> None:
    until = dt.datetime(2024, 5, 17, 19, 0, tzinfo=dt.UTC)
    assert _plain(status_text("ru", "stop_listed", until=until)) == "В стоп-листе до 17 мая 2024 г., 23:59"
    assert "23:59" in status_text("kk", "referred", until=until)
    assert status_text("ru", "admitted", until=until) == status_text("ru", "admitted")


@pytest.mark.parametrize("privilege", Privilege.ALL)
def test_privilege_texts(privilege: str) -> None:
    ru, kk = privilege_text("ru", privilege), privilege_text("kk", privilege)
    assert ru != kk and privilege not in ru and privilege not in kk
    assert "Неизвестная" not in ru


# --- formatting and languages --------------------------------------------------------------------

def test_format_date_and_datetime() -> None:
    day = dt.date(2024, 5, 17)
    assert _plain(format_date("ru", day)) == "17 мая 2024 г."
    assert "мамыр" in format_date("kk", day)
    assert format_date("ru", day) != format_date("kk", day)
    moment = dt.datetime(2024, 5, 17, 4, 30, tzinfo=dt.UTC)  # 09:30 in Almaty (UTC+5)
    assert _plain(format_datetime("ru", moment)) == "17 мая 2024 г., 09:30"
    assert "09:30" in format_datetime("kk", moment)
    assert format_datetime("ru", moment) != format_datetime("kk", moment)
    late = dt.datetime(2024, 5, 17, 20, 30, tzinfo=dt.UTC)  # 01:30 on the 18th in Almaty
    assert _plain(format_date("ru", late)) == "18 мая 2024 г."
    assert _plain(format_datetime("ru", dt.datetime(2024, 5, 17, 9, 30, tzinfo=ALMATY))) == "17 мая 2024 г., 09:30"
    assert re.sub(r"\D", "", format_number("ru", 12345)) == "12345"


def test_languages_and_fallbacks() -> None:
    assert normalize_language("kk-KZ") == "kk"
    assert normalize_language("kz") == "kk"
    assert normalize_language("en") == "ru"
    assert normalize_language(None) == "ru"
    assert translator("en") is translator("ru")
    assert gettext("en", "Referral issued") == gettext("ru", "Referral issued")
    # A message missing from a catalog shows its source; bad params never raise.
    assert gettext("kk", "Not in any catalog {x}", x=1) == "Not in any catalog 1"
    assert gettext("ru", "The field «{field}» must be from {min} to {max}.", field="x")


# --- texts that said something else than they meant ----------------------------------------

def _all_strings(lang: str) -> list[str]:
    out = []
    for msg in _messages(_catalog(lang)):
        out += list(msg.string) if isinstance(msg.string, tuple) else [msg.string]
    return out


def test_kazakh_says_what_is_meant() -> None:
    kk = "\n".join(_all_strings("kk"))
    # "born THIS year", "older than 3" (3-year-olds left out), "not accepted yet", "may SEE again"
    for wrong in ("осы жылы туған", "3 жастан асқан", "бұған дейін қабылданбаған", "Қайта көруге", "әлдеқашан",
                  "кезекте күтуде", "Оқу API", "Оқу қаласы", "Нөмірі {number}", "{number} өтініші"):
        assert wrong not in kk, wrong
    assert "балаңызбен бір жылы туған" in gettext("kk", "open to every child of the birth year")
    assert "3 жастағы және одан үлкен" in gettext(
        "kk", "A private kindergarten under the state order: the seats are open to every waiting child aged 3 or "
              "older in the district.")
    assert error_text("kk", E.DocumentsNotPending(state="rejected")) == \
        "Жеңілдікті растайтын құжаттарды қабылдаудан бас тартылып қойған."
    locked = error_text("kk", E.LinkLocked(until=dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC)))
    assert "қайталап көруге болатын уақыт" in locked
    assert status_text("kk", "waiting") == "Кезекте тұр"


def test_russian_plural_form_zero_serves_21() -> None:
    from bot.delivery.notices import render
    from handlers.status import forecast_text
    from services import status as st
    from services.notifications import TELEGRAM, Notice

    unknown = forecast_text("ru", st.Forecast(st.FORECAST_UNKNOWN, days=21))
    assert "за последние 21 день" in unknown
    notice = Notice(delivery_id=1, channel=TELEGRAM, target="1", lang="ru", kind="seats_open",
                    payload={"seats": 21}, application_id=None, number="A1", child_iin_masked="x")
    assert render("ru", notice).text.endswith("Кто выберет первым, тот и получит место.")
    assert not any(" дн." in s for s in _all_strings("ru"))


def test_withdrawn_and_removed_read_differently() -> None:
    from bot.delivery.notices import SUBJECTS

    for lang in LANGS:
        assert gettext(lang, SUBJECTS["withdrawn"]) != gettext(lang, SUBJECTS["removed"])
        assert status_text(lang, "withdrawn") != status_text(lang, "removed")
    assert gettext("ru", SUBJECTS["withdrawn"]) == "Заявление отозвано"
    assert gettext("kk", SUBJECTS["withdrawn"]) == "Өтініш қайтарып алынды"
    assert "снят" not in gettext("ru", "Application {number} is withdrawn from the queue.")
