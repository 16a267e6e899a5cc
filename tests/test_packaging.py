"""What an installed wahooks needs: its runtime dependencies only, and the files it ships as package data.

`.ci/run` installs the built wheel into a fresh venv and runs it; these tests pin the same rules from the
checkout, quickly.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from cli.main import EMBEDDED_EXTRA, EXIT_USAGE
from models.db import alembic_config, data_folder
from tests.conftest import CATALOG_CSV, PAYLOADS

REPOSITORY = Path(__file__).resolve().parent.parent


def wahooks_without_fakeredis(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `wahooks ARGV` in a Python where fakeredis cannot be imported, as after `pip install wahooks`."""
    code = (
        "import sys; sys.modules['fakeredis'] = None\n"
        "from cli.main import main\n"
        f"sys.exit(main({list(argv)!r}))"
    )
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'wahooks.db'}")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_dev_without_the_embedded_extra_names_it_in_one_line(tmp_path: Path) -> None:
    result = wahooks_without_fakeredis(tmp_path, "dev", "--demo")
    assert result.returncode == EXIT_USAGE
    assert result.stderr.splitlines() == [
        f"wahooks dev: the in-process Redis it runs on is not installed: {EMBEDDED_EXTRA}"
    ]
    assert EMBEDDED_EXTRA == "pip install 'wahooks[embedded]'"


def test_the_other_commands_run_without_the_embedded_extra(tmp_path: Path) -> None:
    migrated = wahooks_without_fakeredis(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    listed = wahooks_without_fakeredis(tmp_path, "tenants", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["id", "name", "phone_number_id", "waba_id", "display", "active"]


def revisions(config: Config) -> dict[str, Path]:
    """Each revision id and its file."""
    return {rev.revision: Path(rev.path) for rev in ScriptDirectory.from_config(config).walk_revisions()}


def test_alembic_ini_and_the_packaged_migrations_are_the_same_revisions() -> None:
    checkout = revisions(Config(str(REPOSITORY / "alembic.ini")))
    packaged = revisions(alembic_config())
    assert checkout
    assert packaged.keys() == checkout.keys()
    assert all(packaged[rev].read_bytes() == checkout[rev].read_bytes() for rev in checkout)


@pytest.mark.parametrize(
    ("package", "folder"),
    [
        ("wahooks_data.migrations", REPOSITORY / "alembic"),
        ("wahooks_data.payloads", PAYLOADS),
        ("wahooks_data.fixtures", CATALOG_CSV.parent),
    ],
)
def test_the_packaged_data_is_the_repository_folder_itself(package: str, folder: Path) -> None:
    """One copy of each file: the editable install maps the package names onto the repository's folders."""
    assert data_folder(package).resolve() == folder.resolve()


def test_a_missing_data_package_says_to_reinstall() -> None:
    with pytest.raises(FileNotFoundError, match="reinstall wahooks"):
        data_folder("wahooks_data.nothing")
