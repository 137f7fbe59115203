"""The UI's languages (en, nl, pl) with Flask-Babel: the session's choice, else the browser's.

The catalogues live in app/translations/<lang>/LC_MESSAGES/messages.po; the .mo files are compiled
from them when the app starts (when missing or older than the .po), so a fresh clone needs no
manual step. `pybabel extract -F babel.cfg -o app/translations/messages.pot .` refreshes the template.
"""
import os
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Blueprint, abort, redirect, request, session, url_for
from flask_babel import Babel, get_locale

LANGUAGES = {"en": "English", "nl": "Nederlands", "pl": "Polski"}
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"

bp = Blueprint("i18n", __name__)


def select_locale() -> str:
    """The language chosen with the switcher, else the best match of Accept-Language, else English."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def compile_catalogues(directory: Path = TRANSLATIONS) -> list[Path]:
    """Compile every messages.po whose messages.mo is missing or older; returns the compiled .mo paths."""
    done = []
    for po in directory.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        tmp = mo.with_suffix(f".mo.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            write_mo(fh, catalog)
        tmp.replace(mo)
        done.append(mo)
    return done


@bp.post("/language")
def switch():
    """Remember the chosen language in the session and go back to the page."""
    lang = request.form.get("lang", "")
    if lang not in LANGUAGES:
        abort(400)
    session["lang"] = lang
    target = request.form.get("next") or ""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = url_for("pages.index")
    return redirect(target)


def init_app(app):
    """Install Babel, the language switcher route and the template globals."""
    try:
        compile_catalogues()
    except OSError:  # a read-only install: use the .mo files as shipped
        pass
    Babel(app, locale_selector=select_locale)
    app.register_blueprint(bp)

    @app.context_processor
    def _languages():
        return {"LANGUAGES": LANGUAGES, "current_language": str(get_locale() or "en")}
