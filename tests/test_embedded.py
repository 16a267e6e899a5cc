"""The README's main command: `wahooks dev --demo` runs the whole pipeline with no servers."""

from pathlib import Path

import pytest

from cli.main import main


def test_demo_replays_the_samples_and_prints_what_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["dev", "--demo"]) == 0
    out = capsys.readouterr().out
    assert "HTTP answers: 200: 58" in out
    assert "webhook_events by outcome: ignored: 4  partial: 6  processed: 47" in out
    assert "wamid.HBgLORDER-UNKNOWN-AND-FRACTIONAL-1" in out and "38.52 USD" in out
    assert (tmp_path / "wahooks-dev.db").exists()


def test_demo_twice_on_the_same_file_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["dev", "--demo"])
    first = capsys.readouterr().out.split("webhook_events by outcome")[1]
    main(["dev", "--demo"])
    assert capsys.readouterr().out.split("webhook_events by outcome")[1] == first
