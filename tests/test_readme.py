"""README's commands and examples are the real ones: CI runs its test line, and every Python block runs here."""

import re
import shlex
from pathlib import Path

import pytest

from lightning_grda.cli import COMMANDS, LIGHTNING_SUBCOMMANDS, main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.DOTALL)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def test_quick_start_commands_and_ci():
    bash = [code.strip() for lang, code in BLOCKS if lang == "bash"]
    main_job, tests = bash[0], bash[1]
    assert main_job.endswith("lightning-grda fit")
    assert "pip install -e ." in main_job
    assert 'pip install -e ".[test]"' in tests
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert tests in ci  # CI runs exactly the README's test command


def test_every_python_block_is_one_that_runs():
    """Every fenced block is found by BLOCKS (so none escapes the runner below), and the Python ones all run there."""
    fences = re.findall(r"^[ \t]*```(.*)$", README, flags=re.MULTILINE)
    assert len(fences) % 2 == 0, "an unclosed code fence"
    labels = [label.strip() for label in fences[0::2]]
    assert len(BLOCKS) == len(labels), "a fence BLOCKS does not see (indented, or with no language)"
    # `py`, `Python` or `python3` would not be run; console/shell blocks are transcripts, their command lines checked
    # by test_every_command_line_names_a_real_subcommand_and_options
    assert set(labels) <= {"python", "bash", "console", "shell"}, labels
    assert len(PYTHON) == labels.count("python") >= 4


@pytest.mark.parametrize("code", PYTHON, ids=[f"example{i + 1}" for i in range(len(PYTHON))])
def test_python_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})


CLI_LINES = [
    line.split("  #")[0].strip()
    for lang, code in BLOCKS
    if lang == "bash"
    for line in code.splitlines()
    if line.startswith("lightning-grda ")
]
CPU = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.strategy=auto", "--trainer.sync_batchnorm=false"]


def test_readme_shows_cli_examples():
    assert len(CLI_LINES) >= 5


@pytest.mark.parametrize("line", CLI_LINES)
def test_cli_example_parses_and_instantiates(line, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the examples name configs/ relative to the repository
    subcommand, *args = shlex.split(line)[1:]
    assert subcommand == "fit"
    if "--print_config" in args:
        with pytest.raises(SystemExit) as exit_info:
            main([subcommand, *args])
        assert exit_info.value.code in (0, None)
        assert "seed_everything" in capsys.readouterr().out
        return
    cli = main([*args, *CPU], run=False)  # parse and build everything, train nothing
    assert cli.model is not None
    assert cli.datamodule is not None


EVERY_CLI_LINE = [
    line.removeprefix("$ ").split("  #")[0].strip()
    for lang, code in BLOCKS
    if lang in ("bash", "console", "shell")
    for line in code.splitlines()
    if line.removeprefix("$ ").startswith("lightning-grda ")
]


@pytest.mark.parametrize("line", EVERY_CLI_LINE)
def test_every_command_line_names_a_real_subcommand_and_options(line, capsys):
    """Every ``lightning-grda`` line in README names a subcommand and options its ``--help`` lists."""
    subcommand, *args = shlex.split(line)[1:]
    assert subcommand in (*LIGHTNING_SUBCOMMANDS, *COMMANDS)
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--help"])
    assert exit_info.value.code in (0, None)
    usage = capsys.readouterr().out
    if subcommand == "tune-c":  # passes every other option through to each trial's fit
        with pytest.raises(SystemExit):
            main(["fit", "--help"])
        usage += capsys.readouterr().out
    for arg in args:
        if arg.startswith("--"):
            # Lightning's help lists --trainer, --model, --data...; nested keys (--trainer.max_epochs) live below them
            name = arg.split("=")[0].split(".")[0]
            assert name in usage, f"{name} is not an option of lightning-grda {subcommand}"
