"""The package's layout: floors as folders, checked.

- import-linter's contracts in ``pyproject.toml`` hold (an upward import fails here, naming the line);
- the import graph has no circle, function-level imports included;
- no module imports another module's private name;
- every import path the README documents still imports;
- versions stored by an earlier main (before the floors moved) still load, verify and predict the same.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "ml"
FIXTURE_STORE = ROOT / "tests" / "fixtures" / "store_b5efb79"


def test_import_linter_contracts_hold():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0, \
        "an import breaks the floors' contracts (the report above names the line)"


def _circles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles():
    import grimp

    assert _circles(grimp.build_graph("ml")) == []


def test_no_private_name_is_imported_across_modules():
    offences = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ml"):
                offences += [f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{alias.name}"
                             for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert offences == []


def _readme_imports() -> list[str]:
    """The ``from ml... import ...`` and ``import ml...`` lines of the README's code blocks, comments removed."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if re.match(r"(from ml[\w.]* import |import ml)", line)]


def test_every_import_path_the_readme_documents_imports():
    imports = _readme_imports()
    assert len(imports) >= 15, imports  # the README's notebook block
    result = subprocess.run([sys.executable, "-c", "\n".join(imports)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def earlier_store(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("store") / "models"
    shutil.copytree(FIXTURE_STORE, copy, symlinks=True, ignore=shutil.ignore_patterns("expected.json"))
    return copy


def test_versions_stored_before_the_move_verify(atb, earlier_store):
    code, out, err = atb("models", "verify", "--models-dir", earlier_store)
    assert code == 0, err
    assert "2 ok, 0 failed" in out


@pytest.mark.parametrize("version", ["2026-12-04_16h_v1", "2026-12-04_16h_v2"])
def test_versions_stored_before_the_move_predict_the_same(atb, earlier_store, version):
    expected = json.loads((FIXTURE_STORE / "expected.json").read_text())[version]
    code, out, err = atb("predict", "BTCUSDT", "--version", version, "--models-dir", earlier_store, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["model_type"], result["as_of"]) == (expected["model_type"], expected["as_of"])
    assert result["predicted_close"] == pytest.approx(expected["predicted_close"], rel=1e-9)


def _pytest_workers_line(*args: str) -> str:
    """What ``pytest -v`` says about xdist workers for ``args`` (selecting no test, so nothing runs)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args, "-k", "no_such_test"],
                            capture_output=True, text=True, cwd=ROOT)
    return "\n".join(line for line in result.stdout.splitlines() if "workers" in line)


def test_the_suite_runs_on_every_core_but_benchmarks_and_s_runs_in_one_process():
    """The default suite is distributed (-n auto in addopts); a benchmark run measures speed and a ``-s`` run
    shows its output as it comes, so tests/conftest.py keeps both in one process."""
    assert "created:" in _pytest_workers_line("tests/unit/test_layout.py")
    assert _pytest_workers_line("tests/benchmark/test_grouped_mheight.py") == ""
    assert _pytest_workers_line("-m", "benchmark", "tests/benchmark") == ""
    assert _pytest_workers_line("-s", "tests/unit/test_layout.py") == ""


SHORT_SETTINGS = ((r"\bdays=\d+", "days=60"), (r"\bepochs=\d+", "epochs=1"), (r"\bmax_trials=\d+", "max_trials=1"))
"""How the docs' code is shortened to run in the suite: fewer days and epochs, nothing else."""


@pytest.mark.parametrize("document", ["README.md", "docs/quickstart.md"])
def test_every_python_block_of_the_readme_and_the_quickstart_runs_as_pasted(document, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / document).read_text(), flags=re.S)
    assert blocks, document
    monkeypatch.chdir(tmp_path)  # the blocks write model.onnx where they run
    monkeypatch.setenv("ATB_MODELS_DIR", str(tmp_path / "models"))  # and store versions in the default store
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        for pattern, short in SHORT_SETTINGS:
            block = re.sub(pattern, short, block)
        exec(compile(block, f"{document} python block {number}", "exec"), namespace)  # noqa: S102


def _options(parser, command=()):
    import argparse

    for action in parser._actions:  # argparse keeps no public list of a parser's options
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*command, name))
        else:
            yield from ((" ".join(command), o) for o in action.option_strings if o.startswith("--") and o != "--help")


def test_the_docs_list_every_option_model_type_timeframe_and_target_the_code_has():
    """docs/cli.md and docs/models.md drift from the parser and the registry: a new option or model fails here."""
    from ml.cli import build_parser
    from ml.training_pipeline.common.markets import TIMEFRAMES
    from ml.training_pipeline.config import TARGETS
    from ml.training_pipeline.models import list_models
    from ml.training_pipeline.models.registry import get_spec

    cli = (ROOT / "docs" / "cli.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in cli.splitlines() if line.startswith("| `--")}
    assert [f"atb {c} {o}" for c, o in _options(build_parser()) if o not in cli] == []
    names = [n for m in list_models() for n in (m, *get_spec(m).aliases)]
    assert [n for n in names if f"`{n}`" not in rows["`--model-type`"]] == []
    assert [t for t in TIMEFRAMES if f"`{t}`" not in rows["`--timeframe`"]] == []
    assert [t for t in TARGETS if f"`{t}`" not in rows["`--target`"]] == []
    models = (ROOT / "docs" / "models.md").read_text()
    assert [m for m in list_models() if f"| `{m}`" not in models] == []



SHORT_OPTIONS = {"--days": "120", "--epochs": "1", "--max-trials": "1", "--variant": "tiny"}
"""How the docs' command lines are shortened to run in the suite: each of these options the command has is set
(added, or its value replaced); nothing else changes."""
SHORT_VALUES = {"--walk-forward": "2", "--until-idle": "1"}
"""Options shortened where a line gives them (their value replaced), never added."""


def _doc_command_lines(document: str) -> list[str]:
    """The ``atb`` lines of a document's bash blocks and its command-line block, in order, with ``[optional]``
    parts and comments dropped (``pip install -e . && atb ...`` keeps its ``atb`` part)."""
    lines, language = [], None  # None: outside a fenced block
    for line in (ROOT / document).read_text().splitlines():
        if line.startswith("```"):
            language = line[3:].strip() if language is None else None
        elif language in ("", "bash"):
            line = line.split(" # ")[0].split("&& ", 1)[-1].strip()
            if line.startswith("atb "):
                lines.append(re.sub(r"\s*\[[^\]]*\]", "", line))
    return lines


def _shortened(argv: list[str], options: set[str]) -> list[str]:
    argv = list(argv)
    for option, value in SHORT_VALUES.items():
        if option in argv:
            argv[argv.index(option) + 1] = value
    for option, value in SHORT_OPTIONS.items():
        if option not in options:
            continue
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    return argv


def _your_files(folder: Path) -> None:
    """The files the README's lines name as the user's own, made from the bundled data: hourly klines in CSV and
    Parquet (the README's eth_1h stand-ins, a later period) and BGL lines in the structured and the raw layout."""
    import pandas as pd

    from ml.data import bundled_log_path, bundled_sample_path
    from ml.training_pipeline.problems.anomaly.formats import get_log_format
    from ml.training_pipeline.problems.anomaly.lines import render_lines

    bars = pd.read_csv(bundled_sample_path("BTCUSDT"))
    bars.tail(24 * 90).to_parquet(folder / "eth_1h.parquet")
    bars.tail(24 * 90).to_csv(folder / "eth_1h.csv", index=False)
    for name in ("later_period.csv", "my_later_bars.csv"):
        bars.tail(24 * 30).to_csv(folder / name, index=False)
    structured = pd.read_csv(bundled_log_path("bgl"), dtype=str, keep_default_na=False)
    structured.tail(300).to_csv(folder / "new_lines.csv", index=False)
    raw = render_lines(structured.to_dict("records"), get_log_format("bgl").line_format)
    (folder / "BGL_2k.log").write_text("".join(line + "\n" for line in raw))


def _sampling_model_trained(out: str, folder: Path, atb) -> None:
    assert "80% interval covers" in out and "nominal 80%" in out  # the sampled interval scored on the test part


def _sampling_model_served(out: str, folder: Path, atb) -> None:
    assert re.search(r"80% interval: .*; std [0-9.e-]+ \(sampling, 100 samples; ", out), out
    import json

    code, served, err = atb("predict", "BTCUSDT", "--model-type", "mcdropout_transformer", "--uncertainty",
                            "--samples", "10", "--json")
    bounds = json.loads(served)["uncertainty"]
    assert code == 0 and bounds["lower"] <= bounds["upper"] and bounds["n_samples"] == 10, err
    assert bounds["lower_prediction"]["predicted_close"] <= bounds["upper_prediction"]["predicted_close"]
    code, _, err = atb("predict", "BTCUSDT", "--model-type", "mcdropout_transformer", "--uncertainty", "--samples", "1")
    assert code == 2 and "n_samples must be an int >= 2" in err and len(err.strip().splitlines()) == 1


def _benchmark_written(out: str, folder: Path, atb) -> None:
    """The comparison the line printed and saved, and the page made again from its JSON (training nothing)."""
    import json

    assert "| persistence | baseline |" in out and "| tcn | tiny |" in out and "ceiling = NumPy sgemm" in out
    results = folder / "benchmark_results"
    payload = json.loads((results / "comparison.json").read_text())
    assert [r["model"] for r in payload["results"]] == ["tcn", "attention_lstm", "lightgbm"]
    assert "keras" in payload["setup"]["library_versions"]
    first = payload["results"][0]
    assert first["evaluated_on"] == "test" and first["keras_p50_ms"] > 0 and first["onnx_p50_ms"] > 0
    persistence = payload["baselines"]["persistence"]  # the baselines are judged on the bars the models were
    assert persistence["skill"] == 0 and persistence["rmse"] > 0
    assert (results / "comparison.csv").read_text().count("\n") == 6  # header, 3 models, 2 baselines
    code, again, err = atb("benchmark", "--from-json", results / "comparison.json", "--docs", folder / "page" / "page.md")
    assert code == 0, err
    page = (folder / "page" / "page.md").read_text()
    assert "| tcn | tiny |" in again and "| lightgbm | tiny |" in page and (folder / "page" / "page.png").is_file()
    table = lambda text: text[text.index("| model |"):text.index("\n\n", text.index("| model |"))]  # noqa: E731
    assert table(page) in again  # the page's table is the one the command printed


LINE_CHECKS = {
    "atb train model BTCUSDT --model-type mcdropout_transformer": _sampling_model_trained,
    "atb predict BTCUSDT --model-type mcdropout_transformer --uncertainty": _sampling_model_served,
    "atb benchmark ": _benchmark_written,
}
"""What the suite checks after a README line ran, beyond its exit code (the line's start -> check(out, folder,
atb)): these lines are the CLI's own tests of the sampling path and of ``atb benchmark``."""


@pytest.mark.parametrize("document", ["README.md", "docs/quickstart.md"])
def test_every_command_line_of_the_readme_and_the_quickstart_runs(document, atb, tmp_path, monkeypatch):
    """Each ``atb`` line, in the document's order (predict after train...), exits 0 with short settings, and the
    lines of :data:`LINE_CHECKS` print and write what they promise. The README's 24 lines are the suite's longest
    test (~2 minutes of one core: a TFT, a walk-forward, a benchmark of three models, a tuning run, MLflow);
    conftest starts it first. The cluster lines (several processes) run in tests/unit/test_distribute.py under
    ``-m slow``."""
    import shlex

    from ml.cli import build_parser

    monkeypatch.chdir(tmp_path)  # tuning folders, mlflow.db and the user's files live where the line runs
    monkeypatch.setenv("ATB_MODELS_DIR", str(tmp_path / "models"))
    _your_files(tmp_path)
    options: dict[str, set[str]] = {}
    for command, option in _options(build_parser()):
        options.setdefault(command, set()).add(option)
    lines = _doc_command_lines(document)
    assert len(lines) >= (20 if document == "README.md" else 3), lines
    checked: list[str] = []
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv[0] == "cluster-local":
            continue
        if "<hash>" in line:  # the folder `atb tune` made and named in its last line
            argv = [a.replace("atb_tuning/BTCUSDT_tcn_default_bayesian_<hash>/", str(next(
                tmp_path.glob("atb_tuning/BTCUSDT_tcn_*")))) for a in argv]
        command = " ".join(a for a in argv[:2] if a in ("train", "model", "anomaly", "predict", "evaluate",
                                                        "tune", "benchmark", "diagnose", "models", "list", "verify"))
        code, out, err = atb(*_shortened(argv, options.get(command, set())))
        assert code == 0, f"{document}: {line}\n{err[-2000:]}"
        for start, check in LINE_CHECKS.items():
            if line.startswith(start):
                check(out, tmp_path, atb)
                checked.append(start)
    assert document != "README.md" or sorted(checked) == sorted(LINE_CHECKS)  # a changed line fails here, not silently

def test_every_command_line_of_the_readme_parses():
    """The README's command lines use options that exist (parsed, not run: the python blocks run above)."""
    import shlex

    from ml.cli import build_parser

    block = (ROOT / "README.md").read_text().split("## Command line", 1)[1].split("```", 2)[1]
    lines = [re.sub(r"\[[^\]]*\]", "", line.split(" # ")[0]).replace("<hash>", "x").strip()
             for line in block.splitlines() if line.startswith("atb ")]
    assert len(lines) >= 20, lines
    parser = build_parser()
    for line in lines:
        argv = shlex.split(line)[1:]
        commands = [argv[:argv.index("--")], argv[argv.index("--") + 2:]] if "--" in argv else [argv]
        for command in commands:
            try:
                parser.parse_args(command)
            except SystemExit:
                pytest.fail(f"README line does not parse: {line}")
