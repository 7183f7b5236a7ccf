"""`.ci/run` runs the README's test command, then lints with the venv's ruff, and fails the run
when a lint fails (issue 9, item 7).

The script runs in a copy of the tree's shape where `python3` is a stand-in that makes a venv
whose pip, pytest and ruff only record how they were called, so the test is about the script,
not about installing anything.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The stand-in `python3 -m venv .venv`: pip and pytest succeed; ruff fails for the subcommand
# named in RUFF_FAILS. Every call is appended to calls.log.
FAKE_PYTHON = r"""#!/usr/bin/env bash
set -eu
[ "$1 $2" = "-m venv" ] || exit 97
mkdir -p "$3/bin"
for tool in pip pytest ruff; do
cat > "$3/bin/$tool" <<'TOOL'
#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$CALLS"
if [ "$(basename "$0")" = ruff ] && [ "$1" = "${RUFF_FAILS:-}" ]; then exit 1; fi
exit 0
TOOL
chmod +x "$3/bin/$tool"
done
"""


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Test it", 1)[1]
    return re.search(r"```sh\n(.+?)\n```", section, re.S).group(1).strip()  # type: ignore[union-attr]


def _run(tmp_path: Path, ruff_fails: str = "") -> tuple[int, list[str], str]:
    tree = tmp_path / "tree"
    (tree / ".ci").mkdir(parents=True)
    (tree / "tests").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tree / ".ci" / "run")
    (tree / "tests" / "pg_server.sh").write_text(
        "pg_server_bin() { return 1; }\npg_server_start() { return 1; }\npg_server_stop() { :; }\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "RUFF_FAILS": ruff_fails,
        "CI": "",
    }
    done = subprocess.run(
        ["bash", str(tree / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    logged = [line.strip() for line in calls.read_text().splitlines()] if calls.exists() else []
    return done.returncode, logged, done.stdout


def test_its_test_command_is_the_readmes() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [command] = re.findall(r'^TEST_COMMAND="(.+)"$', script, re.M)
    assert command == _readme_test_command()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_clean_tree_passes_after_install_tests_and_both_lints(tmp_path: Path) -> None:
    status, calls, _ = _run(tmp_path)
    assert status == 0
    assert calls == [
        "pip install -e .[dev]",
        "pytest",
        "ruff check .",
        "ruff format --check .",
    ]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("failing", ["check", "format"])
def test_a_lint_failure_fails_the_run_and_the_other_lint_still_runs(
    tmp_path: Path, failing: str
) -> None:
    status, calls, output = _run(tmp_path, ruff_fails=failing)
    assert status != 0
    assert "ruff check ." in calls and "ruff format --check ." in calls
    assert "FAILED" in output
