"""The CLI is built from the registries: analysis entries and command modules plug in with
one entry, choices are the library's, and `--help` imports neither torch nor TransformerLens."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import idiomlens.cli as cli
from idiomlens.runs import registry
from idiomlens.runs.registry import Analysis, Option, get_analysis

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformer_lens", "transformers", "pandas")


def _loaded_after(argv: list[str]) -> list[str]:
    """Heavy top-level packages in ``sys.modules`` after ``idiomlens ARGV`` in a fresh process."""
    code = textwrap.dedent(
        f"""
        import sys
        from idiomlens.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    return eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["ablate", "--help"], []])
def test_help_imports_no_torch_and_no_transformer_lens(argv):
    assert _loaded_after(argv) == []


def test_python_x_importtime_help_lists_no_heavy_module():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "idiomlens", "--help"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert not imported & {"torch", "transformer_lens"}


def test_choices_are_the_librarys():
    from idiomlens.interventions import ablation, pairs, specs
    from idiomlens.scoring import detect, features

    def choices(name, flag):
        opt = next(o for o in get_analysis(name).options if flag in o.flags)
        return tuple(opt.kwargs["choices"])

    assert choices("detect", "--pattern") == tuple(detect.MASKS)
    assert choices("score", "--kind") == tuple(features.KINDS)
    assert choices("ablate", "--kind") == tuple(specs.KINDS)
    assert choices("ablate", "--positions") == tuple(ablation.POSITIONS)
    assert choices("patch", "--mode") == tuple(pairs.MODES)
    for name in registry.analysis_names():  # every CLI analysis resolves to a function
        assert callable(get_analysis(name).resolve())


def test_a_new_analysis_is_one_registry_entry(monkeypatch, capsys, tmp_path, saved_model):
    from idiomlens.data import IdiomCorpus
    from tests.runs.analyses import CALLS, MeanLogit, mean_logit
    from tests.runs.conftest import small_corpus

    entry = Analysis(
        name="meanlogit",
        target=mean_logit,
        help="mean logit per example (test)",
        options=(Option(flags=("--scale",), kwargs={"type": float, "default": 1.0}),),
    )
    monkeypatch.setitem(registry._REGISTRY, entry.name, entry)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "mean logit per example (test)" in capsys.readouterr().out
    corpus = small_corpus(5).to_jsonl(tmp_path / "c.jsonl")
    argv = ["meanlogit", "--model", str(saved_model), "--corpus", str(corpus)]
    argv += ["--out", str(tmp_path / "o"), "--scale", "2.5", "--no-progress"]
    assert cli.main(argv) == 0
    result = MeanLogit.load(tmp_path / "o")
    assert result.scale == 2.5 and result.ids == IdiomCorpus.from_jsonl(corpus).ids
    assert CALLS["mean_logit"] == 1
    with pytest.raises(SystemExit):
        cli.main([*argv[:-3], "--scale", "big"])
    assert "invalid float value" in capsys.readouterr().err


def test_a_command_module_is_one_entry_and_is_imported_only_to_run(monkeypatch, capsys, tmp_path):
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    (pkg / "hello.py").write_text(
        textwrap.dedent(
            """
            COMMAND = ("hello", "say hello (test command)")

            def add_arguments(parser):
                parser.add_argument("--name", required=True)

            def run(args):
                print(f"hello {args.name}")
                return 0
            """
        )
    )
    (tmp_path / "flat_hello.py").write_text((pkg / "hello.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "plugpkg.hello"))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "say hello (test command)" in capsys.readouterr().out
    assert "plugpkg" not in sys.modules and "plugpkg.hello" not in sys.modules
    # running it imports the module (here: a flat copy, since the package refuses import)
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES[:-1], "flat_hello"))
    assert cli.main(["hello", "--name", "idioms"]) == 0
    assert capsys.readouterr().out.strip() == "hello idioms"
    assert cli.command_header("flat_hello") == ("hello", "say hello (test command)")


def test_parsed_parameters_match_the_old_hand_written_commands():
    p = cli.build_parser()
    base = ["--model", "m", "--corpus", "c", "--out", "o"]

    def params(*argv):
        args = p.parse_args([argv[0], *base, *argv[1:]])
        return get_analysis(args.analysis).params_from_args(args)

    assert params("score") == {"kind": "idiom"}
    assert params("score", "--kind", "literal", "--layers", "1", "0", "1") == {
        "kind": "literal",
        "layers": [0, 1],
    }
    assert params("detect", "--pattern", "induction") == {
        "pattern": "induction", "rows": "all", "exclude_bos": False,
        "exclude_current_token": False,
    }  # fmt: skip
    assert params("dla") == {} and params("awareness") == {}
    assert params("patch") == {"mode": "paraphrase", "by_position": False, "seed": 0}
    assert params("ablate", "--heads", "1.2", "--group", "g=L0H1,0.2") == {
        "conditions": {"L1H2": [[1, 2]], "g": [[0, 1], [0, 2]]},
        "kind": "zero", "positions": "all", "seed": 0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="used twice"):
        params("ablate", "--heads", "1.2", "--group", "L1H2=0.1")
