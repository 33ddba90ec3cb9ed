"""The deployment guide and its examples hold: the systemd units parse, start a real
command of the CLI with options it takes, and are hardened; the nginx site is accepted
by ``nginx -t`` (when nginx is installed; a structural check otherwise) and sends the
app what it believes; every setting and command the guide names exists."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer.main

from hippocrate.cli import app as cli_app
from hippocrate.config import Settings

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
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
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
