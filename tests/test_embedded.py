"""The README's main command: `wahooks dev --demo` runs the whole pipeline with no servers."""

from pathlib import Path

import pytest

from cli import embedded
from cli.main import main


def test_demo_replays_the_samples_and_prints_what_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["dev", "--demo"]) == 0
    out = capsys.readouterr().out
    assert "HTTP answers: 200: 80" in out
    assert "webhook_events by outcome: ignored: 3  partial: 6  processed: 70" in out
    assert "wamid.HBgLORDER-UNKNOWN-AND-FRACTIONAL-1" in out and "38.52 USD" in out
    assert (tmp_path / "wahooks-dev.db").exists()
    charts = out.split("analytics charts (wahooks analytics --chart):\n")[1].split()
    assert charts == [
        str(tmp_path / f"wahooks-dev-analytics-{t.phone_number_id}.png") for t in embedded.DEMO_TENANTS
    ]
    assert all(Path(chart).read_bytes().startswith(b"\x89PNG") for chart in charts)


def test_demo_twice_on_the_same_file_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["dev", "--demo"])
    first = capsys.readouterr().out.split("webhook_events by outcome")[1]
    main(["dev", "--demo"])
    assert capsys.readouterr().out.split("webhook_events by outcome")[1] == first


@pytest.mark.parametrize(
    ("configured", "shown"),
    [
        (None, "(app secret 'dev-app-secret';"),
        ("a-real-app-secret,an-older-one", "(app secret from WHATSAPP_APP_SECRET;"),
    ],
)
def test_the_dev_server_prints_its_built_in_secret_never_a_real_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    configured: str | None,
    shown: str,
) -> None:
    if configured is None:
        monkeypatch.delenv("WHATSAPP_APP_SECRET", raising=False)
    else:
        monkeypatch.setenv("WHATSAPP_APP_SECRET", configured)
    monkeypatch.setattr(embedded.runner, "run", lambda services: None)  # print, then stop at once
    embedded.serve(f"sqlite:///{tmp_path / 'dev.db'}", 0)
    out = capsys.readouterr().out
    assert shown in out
    assert "a-real-app-secret" not in out
