"""``hippocrate drill`` end to end on a small demo: the copy reveals no known value, every
stolen session is contained within the guard's limits, and the response reaches a
complete dossier, a notice per victim and, for the copy, exception (a)."""

from __future__ import annotations

import json
from pathlib import Path

from hippocrate.breach import drill


def test_the_drill_on_a_small_deployment(tmp_path: Path) -> None:
    report = drill.run(tmp_path / "deployment", patients=12)
    copy = report.copy
    assert copy["searched"] > 12 * 3  # names, emails, phones... of every patient
    assert copy["found"] == 0, copy["examples_found"]
    by_role = {a.role: a for a in report.attacks}
    assert set(by_role) == {"practitioner", "patient", "admin", "support"}
    for attack in report.attacks:
        assert attack.contained, attack
        assert attack.seconds_to_containment is not None
        assert attack.seconds_to_containment < 5
    assert 0 < by_role["practitioner"].patients_exposed <= 20
    assert by_role["admin"].patients_exposed <= 5
    assert by_role["patient"].others_records == 0
    assert by_role["patient"].patients_exposed == 0
    assert by_role["support"].patients_exposed == 0
    response = report.response
    exposed = sum(a.patients_exposed for a in report.attacks)
    assert 0 < response["scope_patients"] <= exposed
    assert response["notify_authority"]
    assert response["notify_people"]
    assert response["missing"] == []
    assert response["notices_queued"] == response["scope_patients"]
    assert report.copy_response["exemption"] == "a"
    assert not report.copy_response["notify_people"]
    text = report.text()
    assert "known plaintext values of patients found: 0" in text
    out = tmp_path / "drill.json"
    drill.write_json(report, out)
    assert json.loads(out.read_text())["format"] == "hippocrate.drill.v1"
    assert out.stat().st_mode & 0o777 == 0o600
