"""load_epie / paraphrase_span / load_corpus on EPIE-layout fixture folders."""

from __future__ import annotations

import shutil

import pytest

from idiomlens.data import IdiomCorpus, load_corpus, load_epie
from idiomlens.data.epie import EPIE_SPLITS, paraphrase_span

FORMAL = "Formal_Idioms_Corpus"
PTB = {"``": '"', "''": '"'}


def _lines(root, name):
    folder = FORMAL if name.startswith(("Formal", "translated")) else "Static_Idioms_Corpus"
    return (root / folder / name).read_text(encoding="utf-8").splitlines()


def _tagged(root, prefix):
    """Reference reading of a tagged corpus: line -> (words, tagged word indices)."""
    words = _lines(root, f"{prefix}_Idioms_Words.txt")
    tags = _lines(root, f"{prefix}_Idioms_Tags.txt")
    return {
        i: (w.split(), [j for j, t in enumerate(tg.split()) if t != "O"])
        for i, (w, tg) in enumerate(zip(words, tags, strict=True))
    }


def _nospace(s):
    return "".join(s.split())


def test_split_counts_and_stable_ids(epie_root):
    labels = _lines(epie_root, "Formal_Idioms_Labels.txt")
    fig = [i for i, v in enumerate(labels) if v.strip() == "1"]
    lit = [i for i, v in enumerate(labels) if v.strip() == "0"]
    corpora = {s: load_epie(epie_root, s) for s in EPIE_SPLITS}
    assert corpora["formal"].ids == tuple(f"formal-{i:06d}" for i in fig)
    assert corpora["formal-literal"].ids == tuple(f"formal-{i:06d}" for i in lit)
    assert corpora["trans"].ids == tuple(f"trans-{i:06d}" for i in fig)
    n_static = len(_lines(epie_root, "Static_Idioms_Words.txt"))
    assert corpora["static"].ids == tuple(f"static-{i:06d}" for i in range(n_static))
    assert {ex.label for ex in corpora["formal-literal"]} == {"literal"}
    assert {ex.label for s in ("formal", "static", "trans") for ex in corpora[s]} == {"figurative"}
    # filtering never renumbers: the ids of a subset are a subset of the ids
    sub = corpora["formal"].filter(lambda ex: "leg" in ex.text)
    assert set(sub.ids) <= set(corpora["formal"].ids) and len(sub) >= 2


@pytest.mark.parametrize("split", ["formal", "formal-literal", "static"])
def test_spans_cover_first_to_last_tagged_word(epie_root, split):
    ref = _tagged(epie_root, "Static" if split == "static" else "Formal")
    for ex in load_epie(epie_root, split):
        line = int(ex.id.split("-")[-1])
        words, idx = ref[line]
        assert _nospace(ex.text) == "".join(PTB.get(w, w) for w in words)
        assert _nospace(ex.idiom) == "".join(PTB.get(w, w) for w in words[idx[0] : idx[-1] + 1])
        assert ex.meta["words"] == [words[i] for i in idx]
        assert ex.meta["word_range"] == [idx[0], idx[-1]]
        spans = ex.meta["idiom_word_spans"]
        assert [ex.text[s:e] for s, e in spans] == [PTB.get(words[i], words[i]) for i in idx]
        assert (spans[0][0], spans[-1][1]) == ex.span
        assert ex.meta["source"].endswith(f"_Words.txt:{line + 1}")
        assert ex.meta["split"] == split


def test_awkward_cases(epie_root):
    formal = load_epie(epie_root, "formal")
    gap = formal["formal-000007"]  # "She spilled all the beans", "all" tagged O
    assert gap.idiom == "spilled all the beans" and gap.meta["contiguous"] is False
    assert [gap.text[s:e] for s, e in gap.meta["idiom_word_spans"]] == ["spilled", "the", "beans"]
    start = formal["formal-000011"]
    assert start.span[0] == 0 and start.idiom == "Hold your horses"
    end = formal["formal-000031"]
    assert end.text == "Stop pulling my leg!" and end.span[1] == len(end.text) - 1
    quoted = formal["formal-000001"]
    assert quoted.text == '"Break a leg," she said.' and quoted.idiom == "Break a leg"
    assert formal["formal-000003"].text == "I don't want to rock the boat at this stage."
    assert formal["formal-000021"].text == "‘We mustn’t play with fire,’ warned the minister."
    assert formal["formal-000009"].text.startswith('"Once in a blue moon",')
    assert formal["formal-000000"].meta["candidate"] == "spill the beans"
    assert "candidate" not in load_epie(epie_root, "static")[0].meta  # optional file


def test_trans_spans_are_the_differing_region(epie_root):
    formal = load_epie(epie_root, "formal")
    para_lines = _lines(epie_root, "translated_sentences.txt")
    ref = _tagged(epie_root, "Formal")
    rules = set()
    for ex in load_epie(epie_root, "trans"):
        line = int(ex.id.split("-")[-1])
        source = formal[f"formal-{line:06d}"]
        assert ex.meta["pair"] == source.id and ex.meta["source_idiom"] == source.idiom
        para, src = para_lines[line].split(), ref[line][0]
        first, last = ex.meta["word_range"]
        rules.add(ex.meta["span_rule"])
        if ex.meta["span_rule"] == "identical":
            assert para == src and ex.span == source.span
            continue
        # outside the span both sentences agree word for word ...
        assert para[:first] == src[:first]
        n_after = len(para) - last - 1
        assert para[last + 1 :] == src[len(src) - n_after :]
        # ... and the span is as narrow as possible
        assert para[first] != src[first] and para[last] != src[len(src) - n_after - 1]
        assert _nospace(ex.idiom) == "".join(para[first : last + 1])
    assert rules == {"diff", "identical"}
    trans = load_epie(epie_root, "trans")
    assert trans["trans-000011"].idiom == "Wait" and trans["trans-000011"].span[0] == 0
    assert trans["trans-000031"].idiom == "joking"  # change at the end
    assert trans["trans-000000"].idiom == "revealed the secret"  # middle


def test_paraphrase_span_rules():
    src = "he spilled the beans today .".split()
    assert paraphrase_span(src, "he told us today .".split()) == ((1, 2), "diff")
    assert paraphrase_span(src, "they spilled the beans today .".split()) == ((0, 0), "diff")
    assert paraphrase_span(src, "he spilled the beans today !".split()) == ((5, 5), "diff")
    assert paraphrase_span(src, src, [1, 2, 3]) == ((1, 3), "identical")
    assert paraphrase_span(src, "he spilled today .".split()) == ((1, 1), "deletion")
    assert paraphrase_span(src, "today .".split()) == ((0, 0), "deletion")
    # repeated words: prefix/suffix never overlap
    assert paraphrase_span("a a".split(), "a a a".split()) == ((2, 2), "diff")
    with pytest.raises(ValueError, match="identical"):
        paraphrase_span(src, src)
    with pytest.raises(ValueError, match="empty"):
        paraphrase_span(src, [])


def _copy(root, tmp_path):
    dst = tmp_path / "epie"
    shutil.copytree(root, dst)
    return dst


def test_trans_accepts_one_line_per_figurative_sentence(epie_root, tmp_path):
    root = _copy(epie_root, tmp_path)
    labels = _lines(root, "Formal_Idioms_Labels.txt")
    para = _lines(root, "translated_sentences.txt")
    kept = [p for p, lab in zip(para, labels, strict=True) if lab.strip() == "1"]
    (root / FORMAL / "translated_sentences.txt").write_text("\n".join(kept) + "\n")
    assert list(load_epie(root, "trans")) == list(load_epie(epie_root, "trans"))
    (root / FORMAL / "translated_sentences.txt").write_text("\n".join(kept[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"translated_sentences.txt: \d+ lines"):
        load_epie(root, "trans")


def test_crlf_and_bom_are_tolerated(epie_root, tmp_path):
    root = _copy(epie_root, tmp_path)
    for path in (root / FORMAL).iterdir():
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert list(load_epie(root, "formal")) == list(load_epie(epie_root, "formal"))


def test_malformed_lines_are_reported_by_file_and_line(epie_bad):
    with pytest.raises(ValueError) as info:
        load_epie(epie_bad, "formal")
    msg = str(info.value)
    for expected in [
        "Formal_Idioms_Tags.txt:4 (formal-000003): 5 tags for 4 words",
        "Formal_Idioms_Tags.txt:5 (formal-000004): no B-IDIOM/I-IDIOM tag",
        "Formal_Idioms_Labels.txt:6 (formal-000005): label must be 0 or 1",
        "Formal_Idioms_Tags.txt:7 (formal-000006): unknown tag",
        "Formal_Idioms_Words.txt:8 (formal-000007): empty sentence",
        "Formal_Idioms_Labels.txt:10 (formal-000009): beyond the end",
    ]:
        assert expected in msg
    assert "6 malformed" in msg


def test_skip_keeps_good_lines_and_records_problems(epie_bad, caplog):
    corpus = load_epie(epie_bad, "formal", on_error="skip")
    assert corpus.ids == ("formal-000000", "formal-000001", "formal-000008")
    assert set(corpus.skipped) == {f"formal-{i:06d}" for i in (3, 4, 5, 6, 7, 9)}
    assert "Tags.txt:4" in corpus.skipped["formal-000003"]
    assert "skipping EPIE line" in caplog.text
    # a literal line is not the formal split's business, so it is not a problem there
    assert load_epie(epie_bad, "formal-literal", on_error="skip").ids == ("formal-000002",)
    trans = load_epie(epie_bad, "trans", on_error="skip")
    assert trans.ids == ("trans-000000", "trans-000001", "trans-000008")
    assert "trans-000003" in trans.skipped


def test_bad_arguments_and_missing_files(epie_root, tmp_path):
    with pytest.raises(ValueError, match="formal, formal-literal, static, trans"):
        load_epie(epie_root, "informal")
    with pytest.raises(ValueError, match="on_error"):
        load_epie(epie_root, "formal", on_error="ignore")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_epie(tmp_path / "nowhere", "formal")
    root = _copy(epie_root, tmp_path)
    (root / FORMAL / "Formal_Idioms_Tags.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Formal_Idioms_Tags.txt"):
        load_epie(root, "formal")
    assert len(load_epie(root, "static")) > 0  # the static corpus is unaffected
    shutil.copy(epie_root / FORMAL / "Formal_Idioms_Tags.txt", root / FORMAL)
    (root / FORMAL / "translated_sentences.txt").unlink()
    assert len(load_epie(root, "formal")) > 0
    with pytest.raises(FileNotFoundError, match="translated_sentences.txt"):
        load_epie(root, "trans")


def test_load_corpus_dispatch(epie_root, corpus, tmp_path):
    assert list(load_corpus(epie_root)) == list(load_epie(epie_root, "formal"))
    assert load_corpus(epie_root, split="static").ids == load_epie(epie_root, "static").ids
    assert list(load_corpus(corpus.to_jsonl(tmp_path / "c.jsonl"))) == list(corpus)
    assert list(load_corpus(str(corpus.to_csv(tmp_path / "c.csv")))) == list(corpus)
    assert isinstance(load_corpus(tmp_path / "c.jsonl"), IdiomCorpus)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="only applies to EPIE"):
        load_corpus(tmp_path / "c.jsonl", split="formal")
    (tmp_path / "c.txt").write_text("hello\n")
    with pytest.raises(ValueError, match="unknown corpus format '.txt'"):
        load_corpus(tmp_path / "c.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not an EPIE corpus"):
        load_corpus(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown EPIE split"):
        load_corpus(epie_root, split="nope")
    demo = load_corpus("demo")
    assert len(demo) > 0 and load_corpus("demo", split="literal").ids == tuple(
        ex.id for ex in demo if ex.meta.get("split") == "literal"
    )


def test_no_break_space_inside_a_word_keeps_counts(epie_root, tmp_path):
    root = _copy(epie_root, tmp_path)
    words = root / FORMAL / "Formal_Idioms_Words.txt"
    lines = words.read_text(encoding="utf-8").split("\n")
    lines[0] = (
        lines[0].replace("surprise party", "surprise\u00a0party").replace("party .", "party  .")
    )
    tags = (root / FORMAL / "Formal_Idioms_Tags.txt").read_text().split("\n")
    tags[0] = " ".join(tags[0].split()[:-1])  # one word fewer
    words.write_text("\n".join(lines), encoding="utf-8")
    (root / FORMAL / "Formal_Idioms_Tags.txt").write_text("\n".join(tags))
    ex = load_epie(root, "formal")["formal-000000"]
    assert ex.text == "He finally spilled the beans about the surprise\u00a0party."
    assert ex.idiom == "spilled the beans"


def test_tags_are_case_insensitive(epie_root, tmp_path):
    root = _copy(epie_root, tmp_path)
    tags = root / FORMAL / "Formal_Idioms_Tags.txt"
    tags.write_text(tags.read_text().lower())
    assert list(load_epie(root, "formal")) == list(load_epie(epie_root, "formal"))


def test_mismatched_candidates_file_is_ignored(epie_root, tmp_path, caplog):
    root = _copy(epie_root, tmp_path)
    cand = root / FORMAL / "Formal_Idioms_Candidates.txt"
    cand.write_text("\n".join(cand.read_text().splitlines()[:-2]) + "\n")
    corpus = load_epie(root, "formal")
    assert corpus.ids == load_epie(epie_root, "formal").ids
    assert "candidate" not in corpus[0].meta and "ignoring" in caplog.text


def test_check_epie_command(epie_root, capsys):
    from idiomlens.data.check_epie import main
    from idiomlens.models import tiny_tokenizer

    folder = tiny_tokenizer().name_or_path  # the tiny tokenizer is saved in a local folder
    assert main([str(epie_root), folder, "--splits", "formal", "trans"]) == 0
    out = capsys.readouterr().out
    assert "formal " in out and "clean=1.0000" in out and "trans" in out
    # an impossible threshold fails and lists nothing unclean (all are clean)
    assert main([str(epie_root), folder, "--splits", "static", "--min-clean", "1.01"]) == 1
    with pytest.raises(SystemExit):
        main([str(epie_root), folder, "--splits", "nope"])
