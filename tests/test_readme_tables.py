"""The README's tables that mirror code say what the code does: every error code with its
class, every environment variable with its option and commands; and the sections the code
sends users to exist. A change to either side without the other fails here, naming the rows
to fix."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import click

from runner import credentials
from runner.api.errors import ERROR_TABLE
from runner.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_TICKED = re.compile(r"`([^`]+)`")


def table_rows(heading: str) -> list[list[str]]:
    """The cells of each body row of the first table under `heading`."""
    section = README.split(f"\n{heading}\n", 1)[1]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:  # after the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    assert rows, f"no table under {heading!r}"
    return rows


def test_the_error_table_lists_every_code_with_its_class() -> None:
    documented: dict[tuple[str, bool], str] = {}
    for cells in table_rows("### How errors are handled"):
        error_class = cells[0].replace(" ", "_")
        for code in _TICKED.findall(cells[1]):
            key = (code.removesuffix(".*"), code.endswith(".*"))
            assert key not in documented, f"{code} is listed twice"
            documented[key] = error_class
    in_code = {(rule.code, rule.prefix): rule.error_class.value for rule in ERROR_TABLE}
    missing = {
        f"{c}{'.*' if p else ''}": k for (c, p), k in in_code.items() if (c, p) not in documented
    }
    stale = {
        f"{c}{'.*' if p else ''}": k for (c, p), k in documented.items() if (c, p) not in in_code
    }
    wrong = {
        c: (documented[(c, p)], k)
        for (c, p), k in in_code.items()
        if documented.get((c, p), k) != k
    }
    assert not missing, f"add to the README's error table (code: class): {missing}"
    assert not stale, f"not in ERROR_TABLE, remove from the README: {stale}"
    assert not wrong, f"README class vs ERROR_TABLE class: {wrong}"


def click_envvars() -> dict[str, tuple[str, set[str]]]:
    """Every environment variable an option of any command reads: (option, commands)."""
    cli.load_all()
    found: dict[str, tuple[str, set[str]]] = {}
    uses: dict[str, set[str]] = defaultdict(set)

    def walk(command: click.Command, path: str) -> None:
        for param in command.params:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
            for name in names:
                option = max(param.opts, key=len)
                assert found.get(name, (option,))[0] == option, f"{name} names two options"
                found[name] = (option, uses[name])
                uses[name].add(path)
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                walk(sub, f"{path} {sub_name}".strip())

    walk(cli, "")
    for name, (option, commands) in found.items():
        if "" in commands:  # an option of the group itself
            found[name] = (option, {"every command"})
    return found


def readme_envvars() -> dict[str, tuple[str, set[str]]]:
    rows: dict[str, tuple[str, set[str]]] = {}
    for cells in table_rows("### Settings"):
        options = _TICKED.findall(cells[1])
        for name in _TICKED.findall(cells[0]):
            assert name not in rows, f"{name} is listed twice"
            commands = {c.strip().strip("`") for c in cells[2].split(",")}
            rows[name] = (options[0] if options else "", commands)
    return rows


def test_the_environment_variable_list_is_complete_and_right() -> None:
    documented = readme_envvars()
    in_code = click_envvars()
    settings = README.split("### Settings", 1)[1].split("\n### ", 1)[0]
    for name in (credentials.ENV_SECRET_ID, credentials.ENV_SECRET_KEY):
        assert f"`{name}`" in settings, f"name {name} in the README's Settings"
    missing = sorted(set(in_code) - set(documented))
    assert not missing, f"add to the README's list of variables: {missing}"
    for name, (option, commands) in in_code.items():
        assert documented[name] == (option, commands), (
            f"README row for {name} should read {option}, commands {sorted(commands)}"
        )
    stale = sorted(set(documented) - set(in_code))
    assert not stale, f"no command reads these any more, remove them from the README: {stale}"


def test_no_variable_is_read_behind_the_commands_backs() -> None:
    """A `CHANGECLOTHES_*` name in the package but in no option (read with os.environ, say)
    would be missing from the list above: each one must be an option's variable."""
    in_source = {
        name
        for path in (ROOT / "runner").rglob("*.py")
        for name in re.findall(r"\bCHANGECLOTHES_[A-Z][A-Z0-9_]*", path.read_text("utf-8"))
    }
    assert in_source, "the scan found nothing: has the package moved?"
    assert in_source <= set(click_envvars()), sorted(in_source - set(click_envvars()))


def test_the_readme_sections_the_code_names_exist() -> None:
    """A message or help text that sends the user to a README section by name (`README,
    "Images in a bucket"`) names a heading the README has."""
    headings = {line.lstrip("#").strip() for line in README.splitlines() if line.startswith("#")}
    cited = {
        (name, str(path.relative_to(ROOT)))
        for path in (ROOT / "runner").rglob("*.py")
        for name in re.findall(r'README,? "([^"]+)"', path.read_text("utf-8"))
    }
    assert len({name for name, _ in cited}) >= 3, "the scan found too little: has it moved?"
    missing = sorted((name, where) for name, where in cited if name not in headings)
    assert not missing, f"no such README heading: {missing}"
