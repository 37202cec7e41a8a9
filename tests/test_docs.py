"""What the docs promise about the public surface: every variable on one page, __all__."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import mailspool
from mailspool import settings_docs
from mailspool.cli import cli
from mailspool.config import SETTINGS, SETTINGS_HELP, Settings
from mailspool.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent


def test_every_environment_variable_is_on_the_configuration_page() -> None:
    used = set()
    for path in (ROOT / "src" / "mailspool").rglob("*.py"):
        used |= set(re.findall(r"MAILSPOOL_[A-Z_]+[A-Z]", path.read_text()))
    documented = set(
        re.findall(r"MAILSPOOL_[A-Z_]+[A-Z]", (ROOT / "docs" / "configuration.md").read_text())
    )
    assert used
    assert used - documented == set()
    assert set(SETTINGS_HELP) <= documented


def _variables_named_in_src() -> set[str]:
    """Every MAILSPOOL_* name in the package: code, the template, the schemas."""
    used = set()
    for path in (ROOT / "src" / "mailspool").rglob("*"):
        if path.suffix in (".py", ".yaml", ".yml", ".json"):
            used |= set(re.findall(r"MAILSPOOL_[A-Z_]+[A-Z]", path.read_text()))
    return used


def test_every_variable_named_in_src_is_a_row_of_the_settings_table() -> None:
    table = {row.env for row in SETTINGS}
    assert "MAILSPOOL_DEADLINE_MARGIN" in _variables_named_in_src()
    assert _variables_named_in_src() - table == set()


def test_the_configuration_page_shows_the_settings_table_as_generated() -> None:
    """Fails when a row changed without `python3 dev.py docs`."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    start = page.index(settings_docs.BEGIN) + len(settings_docs.BEGIN)
    assert page[start : page.index(settings_docs.END)].strip() == settings_docs.markdown_table()


def test_cli_help_lists_every_variable_with_the_meaning_the_page_gives() -> None:
    epilog = cli.epilog or ""
    for row in SETTINGS:
        line = next(line for line in epilog.splitlines() if line.startswith(f"{row.env}: "))
        assert line.startswith(f"{row.env}: {row.help.replace('`', '')[:30]}")


def test_every_row_parses_its_own_variable_and_names_it_when_bad() -> None:
    defaults = Settings.load(environ={})
    for row in SETTINGS:
        assert getattr(defaults, row.name) == row.default(vars_of(defaults))
    with pytest.raises(ConfigurationError, match="MAILSPOOL_SWEEP_AFTER"):
        Settings.load(environ={"MAILSPOOL_SWEEP_AFTER": "soon"})
    with pytest.raises(ConfigurationError, match="MAILSPOOL_DEADLINE_MARGIN"):
        Settings.load(environ={"MAILSPOOL_DEADLINE_MARGIN": "-1"})
    loaded = Settings.load(
        environ={"MAILSPOOL_DEADLINE_MARGIN": "1.5", "MAILSPOOL_RETRY_BASE": "2"}
    )
    assert (loaded.deadline_margin, loaded.retry_base) == (1.5, 2.0)


def vars_of(settings: Settings) -> dict[str, object]:
    return {row.name: getattr(settings, row.name) for row in SETTINGS}


def test_the_public_names_are_exported() -> None:
    assert sorted(mailspool.__all__) == sorted(set(mailspool.__all__))
    for name in mailspool.__all__:
        assert hasattr(mailspool, name), name
    public = {n for n in vars(mailspool) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(mailspool.__all__)


def test_the_published_schemas_are_the_packaged_ones() -> None:
    for name in ("batch-v0.schema.json", "batch-v1.schema.json", "encrypted-v1.schema.json"):
        assert (ROOT / "docs" / name).read_text() == (
            ROOT / "src" / "mailspool" / "schema" / name
        ).read_text()


def test_the_article_s_numbers_appear_only_on_its_page() -> None:
    """S1..S17 and W1..W12 number the article's requirements and weak spots on
    docs/article.md; elsewhere the code and the docs say in words what they meant
    (S3 alone is also Amazon S3's name, so it is not searched for)."""
    number = re.compile(r"\b(W(1[0-2]|[1-9])|S(1[0-7]|[124-9]))\b")
    article = ROOT / "docs" / "article.md"
    pages = [*(ROOT / "src" / "mailspool").rglob("*.py"), *(ROOT / "docs").glob("*.md")]
    cited = [
        f"{path.relative_to(ROOT)}: {match.group()}"
        for path in pages
        if path != article
        for match in number.finditer(path.read_text())
    ]
    assert cited == []
    assert len(number.findall(article.read_text())) >= 29
    assert "(article.md)" in (ROOT / "docs" / "architecture.md").read_text()


@pytest.mark.parametrize("page_name", ["architecture.md", "article.md"])
def test_every_module_a_page_names_exists(page_name: str) -> None:
    page = (ROOT / "docs" / page_name).read_text()
    package = ROOT / "src" / "mailspool"
    names = {path.name for path in package.rglob("*") if path.suffix in (".py", ".yaml")}
    named = set(re.findall(r"\b((?:[a-z_]+/)?[a-z_]+\.(?:py|yaml))\b", page))
    missing = [
        name
        for name in sorted(named)
        if not (
            (ROOT / name).exists()
            if name.startswith("tests/")
            else (package / name).exists()
            if "/" in name
            else name in names
        )
    ]
    assert len(named) > 20
    assert missing == []


def test_the_architecture_page_shows_every_folder_of_the_package() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    folders = {
        path.name
        for path in (ROOT / "src" / "mailspool").iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    }
    assert len(folders) >= 9
    assert [name for name in sorted(folders) if f"{name}/ " not in page] == []


def _layer_imports(layer: str) -> set[str]:
    """The top-level parts of mailspool that a folder of the package imports."""
    found: set[str] = set()
    for path in (ROOT / "src" / "mailspool" / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mailspool."):
                found.add(str(node.module).split(".")[1])
            elif isinstance(node, ast.Import):
                found.update(
                    a.name.split(".")[1] for a in node.names if a.name.startswith("mailspool.")
                )
    return found - {layer}


def test_the_layers_import_one_way() -> None:
    """As docs/architecture.md says: stores and transports use only the flat modules,
    the spool format adds the stores, and the request side and delivery never use each
    other."""
    flat = {path.stem for path in (ROOT / "src" / "mailspool").glob("*.py")}
    assert _layer_imports("stores") <= flat
    assert _layer_imports("transports") <= flat
    assert _layer_imports("spool") <= flat | {"stores"}
    assert "delivery" not in _layer_imports("producer")
    assert "producer" not in _layer_imports("delivery")
