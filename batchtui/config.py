"""The configuration file: default company, SMTP settings and batch job managers.

It lives in the platformdirs config folder (``config.toml``), or where
``BATCHTUI_CONFIG`` points. SMTP credentials live here, never in the database;
a file that holds the SMTP password and that group or others may read is not
trusted with it: its [smtp] settings are ignored, with a warning.

    default_company = "DAT"
    managers = ["ops", "root"]      # may change any job; "*" means everyone
    theme = "nord"                  # the console's theme (written by the console when you choose one)

    [smtp]
    host = "smtp.example.com"
    port = 587
    user = "batch"
    password = "..."
    sender = "batch@example.com"
    tls = "starttls"                # "starttls", "ssl" (implicit TLS, port 465) or "none"
    cafile = "/etc/ssl/private-ca.pem"   # trust a private CA (else the system's CAs)
    domain = "example.com"          # user names without @ get this domain
    allowed_recipients = ["ops@partner.example", "@partner.example"]   # e-mail outside domain

    notify_urls = ["json://hooks.example.com/batch"]   # Apprise URLs (top level, before [smtp])

Alert e-mail goes only to addresses at ``domain`` or in ``allowed_recipients``
(see recipients.py). TLS always verifies the server's certificate and host
name (``ssl.create_default_context``); there is no setting that turns it off.
The old ``starttls = true`` means ``tls = "starttls"``; with neither key,
``tls`` is ``"ssl"`` on port 465 and ``"none"`` otherwise (what a config
without ``starttls`` did before). ``port`` defaults to 465 for ``"ssl"``,
25 otherwise.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from .errors import UserError
from .recipients import DeliverySetup, Recipients, check_allow_list

TLS_MODES = ("starttls", "ssl", "none")


@dataclass
class SmtpSettings:
    host: str = ""
    port: int = 0  # 0: the default of the TLS mode (465 for "ssl", else 25)
    user: str = ""
    password: str = ""
    sender: str = ""
    starttls: bool | None = None  # the old key: true means tls = "starttls"
    tls: str = ""  # "starttls", "ssl" or "none"; "" until load_config decides
    cafile: str = ""  # a PEM file of CA certificates to trust instead of the system's
    domain: str = ""
    # Addresses ("ops@partner.example") and domains ("@partner.example") mailed besides the domain.
    allowed_recipients: list[str] = field(default_factory=list)

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def tls_mode(self) -> str:
        """The TLS mode in force: the ``tls`` key, else the old ``starttls``, else by the port."""
        if self.tls:
            return self.tls
        if self.starttls:
            return "starttls"
        return "ssl" if self.port == 465 else "none"

    @property
    def port_number(self) -> int:
        return self.port or (465 if self.tls_mode == "ssl" else 25)

    @property
    def recipients(self) -> Recipients:
        """Who alert e-mail may go to (recipients.py)."""
        return Recipients.of(self.domain, self.allowed_recipients)


@dataclass
class Config:
    default_company: str = "DAT"
    managers: list[str] = field(default_factory=lambda: ["root"])
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    path: Path | None = None
    smtp_refused: str | None = None  # why the [smtp] settings were not used (a file others can read)
    notify_urls: list[str] = field(default_factory=list)  # Apprise URLs for alerts with notify (chat, webhooks)

    @property
    def delivery(self) -> DeliverySetup:
        """What this config cannot deliver, said when an alert that asks for it is saved."""
        email = None
        if not self.smtp.configured:
            email = (self.smtp_refused or "no SMTP server is configured ([smtp] host): the e-mail stays "
                     "pending until a batch server with one sends it")
        notify = None
        if not self.notify_urls:
            notify = ("no notify_urls are configured: the notice stays pending until a batch server with "
                      "them sends it")
        elif not notify_installed():
            notify = ("notify_urls need Apprise, which is not installed: pip install 'batchtui[notify]'")
        return DeliverySetup(email, notify)
    theme: str = ""  # the console's theme, as last chosen there ("": Textual's default)

    def is_manager(self, user: str) -> bool:
        """On PostgreSQL the database role decides instead of the list (identity.managers)."""
        from .identity import managers

        applying = managers(self.managers)
        return "*" in applying or user in applying


def notify_installed() -> bool:
    """Whether the optional extra ``notify`` (Apprise) is installed (and imports)."""
    try:
        import apprise  # noqa: F401
    except ImportError:
        return False
    return True


def config_path() -> Path:
    env = os.environ.get("BATCHTUI_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("batchtui")) / "config.toml"


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    if not path.exists():
        return Config(path=path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path}: {exc}") from None
    cfg = Config(path=path)
    company = data.get("default_company", cfg.default_company)
    if not isinstance(company, str) or not company:
        raise UserError(f"config file {path}: default_company must be a company ID")
    cfg.default_company = company
    managers = data.get("managers", cfg.managers)
    if not isinstance(managers, list) or not all(isinstance(m, str) for m in managers):
        raise UserError(f"config file {path}: managers must be a list of user names")
    cfg.managers = managers
    theme = data.get("theme", "")
    if not isinstance(theme, str):
        raise UserError(f"config file {path}: theme must be the name of a theme (\"nord\")")
    cfg.theme = theme
    smtp = data.get("smtp", {})
    if not isinstance(smtp, dict):
        raise UserError(f"config file {path}: [smtp] must be a table")
    known = SmtpSettings.__dataclass_fields__
    for key, value in smtp.items():
        if key not in known:
            raise UserError(f"config file {path}: unknown smtp setting {key!r}")
        try:
            _check_smtp(key, value)
        except ValueError as exc:
            raise UserError(f"config file {path}: [smtp] {key}: {exc}") from None
        setattr(cfg.smtp, key, value)
    if cfg.smtp.tls and cfg.smtp.starttls is not None and (cfg.smtp.tls == "starttls") != cfg.smtp.starttls:
        raise UserError(f"config file {path}: [smtp] tls = {cfg.smtp.tls!r} and starttls = "
                        f"{str(cfg.smtp.starttls).lower()} disagree: keep tls only")
    try:
        check_allow_list(cfg.smtp.allowed_recipients)
    except ValueError as exc:
        raise UserError(f"config file {path}: smtp {exc}") from None
    urls = data.get("notify_urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and "://" in u and u.strip() == u for u in urls):
        raise UserError(f"config file {path}: notify_urls must be a list of Apprise URLs "
                        "([\"json://host:port/path\", \"ntfy://topic\"])")
    cfg.notify_urls = urls
    if cfg.smtp.password:
        loose = _readable_by_others(path)
        if loose:
            # As ssh and .netrc do: a secret in a file others can read is not used.
            cfg.smtp_refused = (
                f"config file {path} holds the SMTP password but {loose}: the [smtp] settings are "
                f"not used and no alert e-mail is sent until it is readable by its owner only "
                f"(chmod 600 {path})"
            )
            cfg.smtp = SmtpSettings()
            logging.getLogger("batchtui.config").warning("batchtui: warning: %s", cfg.smtp_refused)
    return cfg


def _check_smtp(key: str, value: object) -> None:
    """One [smtp] setting as the file gives it; ValueError says what is wrong."""
    if key == "port":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
            raise ValueError("must be a port number (1 to 65535)")
    elif key == "starttls":
        if not isinstance(value, bool):
            raise ValueError('must be true or false (or use tls = "starttls" | "ssl" | "none")')
    elif key == "tls":
        if value not in TLS_MODES:
            raise ValueError(f'must be "starttls", "ssl" or "none", not {value!r}')
    elif key == "cafile":
        if not isinstance(value, str) or not value:
            raise ValueError("must be the path of a PEM file of CA certificates")
        if not os.path.isfile(os.path.expanduser(value)):
            raise ValueError(f"{value!r} is not a file")
    elif key == "domain":
        if not isinstance(value, str):
            raise ValueError('must be a domain name ("example.com")')
    elif key in ("host", "user", "password", "sender"):
        if not isinstance(value, str):
            raise ValueError("must be a text")
_THEME_LINE = re.compile(r"^\s*theme\s*=.*$", re.MULTILINE)


def save_theme(path: Path, theme: str) -> None:
    """Remember the console's theme in the config file: its ``theme = "..."`` line replaced, or
    added before the first table; the rest of the file (comments, the SMTP settings) as it was,
    its mode kept (a new file: readable by its owner only). Written whole or not at all."""
    if not re.fullmatch(r"[\w.-]{1,60}", theme):
        raise UserError(f"{theme!r} is not the name of a theme")
    line = f'theme = "{theme}"'
    try:
        text = path.read_text() if path.exists() else ""
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path}: {exc}") from None
    table = re.search(r"^\s*\[", text, re.MULTILINE)
    top, rest = (text[:table.start()], text[table.start():]) if table else (text, "")
    if _THEME_LINE.search(top):
        top = _THEME_LINE.sub(line, top, count=1)
    else:
        top = (top.rstrip("\n") + "\n" if top.strip() else "") + line + "\n" + ("\n" if rest else "")
    try:
        tomllib.loads(top + rest)  # never write a file that would no longer load
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path}: {exc}") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as out:
            out.write(top + rest)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"config file {path}: {exc}") from None


def _readable_by_others(path: Path) -> str | None:
    """Why a file is not private to its owner, or None."""
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_mode & 0o077:
        return f"group or others may read it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def acting_user() -> str:
    """Who is acting: the PostgreSQL role of the open database, else the login name.

    On SQLite (and for a PostgreSQL superuser) BATCHTUI_USER names the
    operator (service accounts, tests); the database file is private to its
    owner, so only that account can write it anyway. See identity.py.
    """
    from .identity import database_user

    user = database_user()
    if user:
        return user
    user = os.environ.get("BATCHTUI_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers): KeyError, OSError from 3.13
        return str(os.getuid())
