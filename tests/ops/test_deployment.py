"""The deployment guide and its examples hold: the systemd units parse, start a real
command of the CLI with options it takes, and are hardened; the nginx site is accepted
by ``nginx -t`` (when nginx is installed; a structural check otherwise) and sends the
app what it believes; every setting and command the guide names exists."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer.main
from prometheus_client import CollectorRegistry

from hippocrate.audit.scheduler import checkpoint_once
from hippocrate.audit.service import append
from hippocrate.cli import app as cli_app
from hippocrate.config import Settings
from hippocrate.ops import collectors, metrics
from hippocrate.runtime import Runtime
from tests.audit.test_trail import event
from tests.conftest import Store
from tests.identity.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "DEPLOYMENT.md"
UNITS = sorted(DEPLOY.glob("*.service"))
NGINX = DEPLOY / "nginx.conf"

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
}


def directives(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit's sections and their keys, every value of a repeated key kept (systemd
    allows them; configparser alone keeps the last)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")  # raises on a line that is not INI
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            assert parser.has_section(section), line
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        found[section][key.strip()].append(value.strip())
    return found


def command_of(words: list[str]) -> tuple[Any, list[str]]:
    """The CLI command that ``words`` (after ``hippocrate``) name, and its arguments
    (a group has ``commands``; Typer brings a click of its own, so no isinstance)."""
    command: Any = typer.main.get_command(cli_app)
    rest = list(words)
    while hasattr(command, "commands") and rest:
        # The root loads a topic's commands when asked (``get_command``), not before.
        found = command.get_command(typer.Context(command), rest[0])
        if found is None:
            break
        command = found
        rest.pop(0)
    return command, rest


def test_there_are_units_and_a_proxy_site() -> None:
    assert {p.name for p in UNITS} >= {"hippocrate.service", "hippocrate-notices.service"}
    assert NGINX.exists()


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_a_unit_starts_a_real_command_with_options_it_takes(unit: Path) -> None:
    service = directives(unit)["Service"]
    (start,) = service["ExecStart"]
    program, *words = shlex.split(start)
    assert Path(program).name == "hippocrate", start
    command, arguments = command_of(words)
    assert not hasattr(command, "commands"), f"{start}: names a group, not a command"
    # Parsing the arguments as the CLI would: an unknown option or a bad value raises.
    command.make_context(command.name or "", list(arguments))


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_a_unit_is_hardened(unit: Path) -> None:
    service = directives(unit)["Service"]
    for key, expected in HARDENING.items():
        assert service.get(key) == [expected], f"{unit.name}: {key}={expected} expected"
    assert service["User"], unit.name
    assert service["User"] != ["root"], unit.name
    assert service["ReadWritePaths"] == ["/var/lib/hippocrate"], unit.name
    environment = dict(v.split("=", 1) for v in service["Environment"])
    assert environment["HIPPOCRATE_DATA_DIR"] == "/var/lib/hippocrate"
    # Settings with secrets come from a file of their own, never from the unit.
    assert service["EnvironmentFile"] == ["/etc/hippocrate/hippocrate.env"]
    assert not any(re.search(r"PASSWORD|PIN|SECRET", v) for v in service["Environment"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    """``systemd-analyze verify`` on a copy pointing at this checkout's command (it
    checks that the program exists) and at users that exist here."""
    hippocrate = shutil.which("hippocrate") or str(ROOT / ".venv" / "bin" / "hippocrate")
    text = unit.read_text(encoding="utf-8").replace(
        "/opt/hippocrate/venv/bin/hippocrate", hippocrate
    )
    text = re.sub(r"(?m)^(User|Group)=hippocrate$", r"\1=root", text)
    text = re.sub(r"(?m)^EnvironmentFile=.*$", "EnvironmentFile=-/dev/null", text)
    copy = tmp_path / unit.name
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if (unit.name in line and "Unknown key" in line) or "is not executable" in line
    ]
    assert done.returncode == 0, done.stdout + done.stderr
    assert not complaints, complaints


def test_the_proxy_site_sends_the_app_what_it_believes() -> None:
    text = NGINX.read_text(encoding="utf-8")
    body = re.sub(r"#.*", "", text)
    assert body.count("{") == body.count("}"), "unbalanced braces"
    assert re.search(r"server 127\.0\.0\.1:8000;", body)
    assert "proxy_pass http://hippocrate;" in body
    # Overwrites the client's header: what the app reads from the right is nginx's peer.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in body
    assert "$proxy_add_x_forwarded_for" not in body
    assert re.search(r"listen 443 ssl", body)
    assert "client_max_body_size 52m;" in body
    # The app of the unit listens where the site sends it, and trusts that proxy.
    (start,) = directives(DEPLOY / "hippocrate.service")["Service"]["ExecStart"]
    assert "--host 127.0.0.1 --port 8000" in start
    assert "HIPPOCRATE_TRUSTED_PROXIES=127.0.0.1" in text
    assert Settings(trusted_proxies="127.0.0.1").trusted_proxy_networks
    # Readiness only from the private network; the metrics port never proxied.
    health = re.search(r"location /api/v1/health \{(.*?)\}", body, re.S)
    assert health is not None
    assert "deny all;" in health.group(1)
    assert "9464" not in body
    assert "/metrics" not in body


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    certificate, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hippocrate.example.fr",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    text = NGINX.read_text(encoding="utf-8")
    text = text.replace("/etc/ssl/hippocrate/fullchain.pem", str(certificate))
    text = text.replace("/etc/ssl/hippocrate/privkey.pem", str(key))
    text = text.replace("/var/log/nginx/", f"{tmp_path}/")
    site = tmp_path / "nginx.conf"
    site.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(site),
            "-g",
            f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_every_setting_the_guide_and_the_examples_name_exists() -> None:
    fields = set(Settings.model_fields)
    texts = [GUIDE.read_text(encoding="utf-8")] + [
        p.read_text(encoding="utf-8") for p in [*UNITS, NGINX]
    ]
    named = {m for text in texts for m in re.findall(r"HIPPOCRATE_([A-Z0-9_]+\*?)", text)}
    assert len(named) > 30, named
    unknown = []
    for name in sorted(named):
        if name.endswith(("*", "_")):  # a family: HIPPOCRATE_PKCS11_*
            prefix = name.rstrip("*").lower()
            if not any(f.startswith(prefix) for f in fields):
                unknown.append(name)
        elif name.lower() not in fields:
            unknown.append(name)
    assert unknown == [], f"not settings: {unknown}"


def test_every_command_the_guide_names_exists() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    named = set(re.findall(r"`hippocrate ([a-z][a-z -]*)", guide))
    assert {"serve", "init", "audit chain", "breach worker", "keys rotate"} <= {
        n.strip() for n in named
    }, named
    for words in named:
        command, rest = command_of(words.split())
        leftovers = [w for w in rest if not w.startswith("-")]
        assert not leftovers, f"`hippocrate {words}`: no command {leftovers[0]!r}"
        assert command.name != "hippocrate" or not words.strip(), words


# -- the alert rules -----------------------------------------------------------------

ALERTS = DEPLOY / "alerts.yml"

#: Series Prometheus makes itself, not the app (``up``: whether a scrape answered).
PROMETHEUS_OWN = frozenset({"up"})

SEVERITIES = frozenset({"page", "ticket"})
DURATION = re.compile(r"^(?:\d+[smhdwy])+$")


class YamlSubset:
    """A reader of the block YAML the rule file is written in: mappings, sequences of
    mappings, plain or quoted scalars (every one a string) and ``|`` literal blocks.
    Anything else (flow collections, anchors, tags, tabs, a plain scalar holding
    ``": "`` or ``" #"``) is refused rather than read differently from a YAML parser;
    where PyYAML is installed the test also compares the two readings. (PyYAML is not
    a dependency of the project.)"""

    def __init__(self, text: str) -> None:
        assert "\t" not in text, "tabs"
        self.lines = text.splitlines()
        self.at = 0

    def load(self) -> Any:
        self._skip()
        found = self._block(self._indent())
        self._skip()
        assert self.at == len(self.lines), f"line {self.at + 1}: {self.lines[self.at]!r}"
        return found

    def _skip(self) -> None:
        while self.at < len(self.lines) and self.lines[self.at].strip()[:1] in ("", "#"):
            self.at += 1

    def _indent(self) -> int:
        line = self.lines[self.at]
        return len(line) - len(line.lstrip(" "))

    def _block(self, indent: int) -> Any:
        if self.lines[self.at].strip().startswith("- "):
            return self._sequence(indent)
        return self._mapping(indent)

    def _sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while self.at < len(self.lines) and self._indent() == indent:
            line = self.lines[self.at]
            assert line.strip().startswith("- "), f"line {self.at + 1}: {line!r}"
            # The item is a mapping whose first key sits after the dash.
            self.lines[self.at] = " " * (indent + 2) + line.strip()[2:]
            items.append(self._mapping(indent + 2))
            self._skip()
        return items

    def _mapping(self, indent: int) -> dict[str, Any]:
        found: dict[str, Any] = {}
        while self.at < len(self.lines) and self._indent() == indent:
            line = self.lines[self.at].strip()
            if line.startswith("- "):
                break
            key, sep, rest = line.partition(":")
            assert sep, line
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), line
            assert key not in found, f"{key} twice"
            rest = rest.strip()
            self.at += 1
            if rest in ("|", "|-"):
                found[key] = self._literal(indent, keep=rest == "|")
            elif rest:
                found[key] = self._scalar(rest)
            else:
                self._skip()
                assert self._indent() > indent, f"{key}: nothing under it"
                found[key] = self._block(self._indent())
            self._skip()
        return found

    def _literal(self, indent: int, *, keep: bool) -> str:
        lines: list[str] = []
        inner: int | None = None
        while self.at < len(self.lines):
            line = self.lines[self.at]
            if line.strip():
                depth = len(line) - len(line.lstrip(" "))
                if depth <= indent:
                    break
                inner = depth if inner is None else inner
                assert depth >= inner, f"line {self.at + 1}: less indented than its block"
                lines.append(line[inner:])
            else:
                lines.append("")
            self.at += 1
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines) + ("\n" if keep else "")

    @staticmethod
    def _scalar(text: str) -> str:
        if text.startswith('"'):
            value: str = json.loads(text)
            return value
        if text.startswith("'"):
            assert len(text) >= 2, text
            assert text.endswith("'"), text
            return text[1:-1].replace("''", "'")
        assert text[0] not in "[]{}&*!|>%@`,?:-#", f"not a plain scalar: {text!r}"
        assert ": " not in text, f"not a plain scalar: {text!r}"
        assert " #" not in text, f"not a plain scalar: {text!r}"
        return text


def rule_file() -> dict[str, Any]:
    text = ALERTS.read_text(encoding="utf-8")
    loaded: dict[str, Any] = YamlSubset(text).load()
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return loaded
    assert yaml.safe_load(text) == loaded  # the subset reads it as a YAML parser does
    return loaded


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_file()["groups"] for rule in group["rules"]]


def sample_names(registry: CollectorRegistry) -> set[str]:
    """The names of the samples a registry's families export (a counter ``x`` is
    ``x_total``, a histogram ``x_bucket``, ``x_sum``, ``x_count``...), whether or not
    a labelled family has a sample yet."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + end for end in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def exported(sqlite_store: Store, tmp_path: Path) -> set[str]:
    """Every series the app exports: the processes' own (``ops.metrics``) and those
    read from the shared state at scrape time (``ops.collectors``, over a real store
    that holds a chained audit event and its signed checkpoint, so every family shows)."""
    registry = CollectorRegistry()
    metrics.definitions(registry)
    runtime = Runtime(settings_for(tmp_path, sqlite_store), sqlite_store.sessions)
    with sqlite_store.sessions.begin() as session:
        append(session, [event(1)])
    assert checkpoint_once(runtime) == 1
    registry.register(collectors.StateCollector(runtime))
    return sample_names(registry)


def test_the_alert_rules_are_a_prometheus_rule_file() -> None:
    groups = rule_file()["groups"]
    assert [group["name"] for group in groups] == ["hippocrate-page", "hippocrate-ticket"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) >= 16, names
    for group in groups:
        assert set(group) == {"name", "rules"}
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Hippocrate[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
            assert DURATION.match(rule["for"]), rule["for"]
            assert set(rule["labels"]) == {"severity"}
            assert rule["labels"]["severity"] in SEVERITIES
            assert rule["labels"]["severity"] == group["name"].removeprefix("hippocrate-")
            assert set(rule["annotations"]) == {"summary", "description"}
            assert all(len(text) > 20 for text in rule["annotations"].values())
            expr = rule["expr"]
            assert expr.count("(") == expr.count(")"), expr
            assert expr.count("{") == expr.count("}"), expr
            assert re.search(r"(>|<|==|absent\()", expr), expr  # an expression that can fire


#: Words of PromQL that are not series: operators, modifiers, and what ``by`` or a
#: matcher holds is removed before the names are read.
PROMQL_WORDS = frozenset({"and", "or", "unless", "bool", "offset", "on", "ignoring"})


def series_of(expr: str) -> set[str]:
    """The series an expression reads: its identifiers, less quoted strings, label
    matchers, ranges, grouping clauses, functions (a name before ``(``) and numbers."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\b[A-Za-z_:][A-Za-z0-9_:]*\s*\(", "(", bare)
    return {
        word
        for word in re.findall(r"\b[A-Za-z_:][A-Za-z0-9_:]*\b", bare)
        if word not in PROMQL_WORDS
    }


def test_every_series_an_alert_reads_is_one_the_app_exports(exported: set[str]) -> None:
    assert "hippocrate_key_unwraps_total" in exported  # the reading itself works
    assert "hippocrate_audit_checkpoint_age_seconds" in exported
    read: set[str] = set()
    for rule in rules():
        names = series_of(rule["expr"])
        assert names, rule["expr"]
        unknown = names - exported - PROMETHEUS_OWN
        assert not unknown, f"{rule['alert']} reads {sorted(unknown)}, which no one exports"
        read |= names
    # What the guide pages on is all there.
    assert {
        "hippocrate_guard_containments_total",
        "hippocrate_audit_chain_lag_seconds",
        "hippocrate_audit_checkpoint_age_seconds",
        "hippocrate_http_requests_total",
        "hippocrate_metrics_unreadable",
        "hippocrate_notices",
        "hippocrate_notices_delivered_total",
    } <= read


def test_a_misspelt_series_would_be_caught(exported: set[str]) -> None:
    assert series_of('sum(rate(hippocrate_http_request_total{status=~"5.."}[5m])) > 0') == {
        "hippocrate_http_request_total"
    }
    assert "hippocrate_http_request_total" not in exported
    assert series_of("max by (instance, budget) (a / b) > 0.8 and up == 0") == {"a", "b", "up"}


def test_the_guide_points_to_the_rule_file() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    assert "deploy/alerts.yml" in guide
    for name in (rule["alert"] for rule in rules()):
        assert name in guide, f"{name} is not in the guide"
