"""rf_bert and rf_gpt2 (common.text): presets against the original's figure runs, the features against a
manual forward pass, the 720 saturation and the original's train loss, local files and the Hub route, the
frozen encoder, errors without the Hub, and Figs. 16-19 from smoke logs. What every experiment must do
(smoke, resume, bad flags, divergence) is in test_experiments.py; tiny models and data are made in conftest."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from common import cap_weight_, load_checkpoint, read_metrics
from common.unplug.regularisation import rf_terms
from common.text import encode, load_text_classifier, load_text_splits, padded_batch
from common.unplug import text_task
from tests.conftest import write_text_split

REPO = Path(__file__).resolve().parents[2]
QUIET = ["--threads", "1", "--no_progress"]


def _flags(model, data, out_dir, *extra):
    return ["--preset", "cpu", "--model_name", str(model), "--data_dir", str(data), "--train_subset", "0",
            "--freeze_layers", "0", "--max_length", "16", "--epochs", "3", "--unplug_epoch", "1", "--batch_size", "8", *QUIET,
            "--out_dir", str(out_dir), *extra]


def test_presets_are_the_runs_behind_the_originals_figures():
    from rf_bert import train as bert
    from rf_gpt2 import train as gpt2

    shared = ("dataset", "num_classes", "epochs", "lr", "momentum", "weight_decay", "dropout", "max_length",
              "temperature", "normalise_features", "cap", "max_norm", "unplug_epoch", "unplug_recipe", "regularizer")
    expected = {"dataset": "SetFit/sst5", "num_classes": 5, "epochs": 300, "lr": 1e-3, "momentum": 0.9,
                "weight_decay": 0.0, "dropout": 0.0, "max_length": 128, "temperature": 2.0,
                "normalise_features": True, "cap": "frobenius", "max_norm": 30.0, "unplug_recipe": "repo",
                "unplug_epoch": 149,  # the original's 1-based epoch 150 is the first without the term
                "regularizer": "rf"}
    b, g = bert.parse_args(["--preset", "paper"]).config, gpt2.parse_args(["--preset", "paper"]).config
    assert {k: b[k] for k in shared} == expected and {k: g[k] for k in shared} == expected
    assert (b["model_name"], b["lam"], b["lr_bump"], b["batch_size"], b["weight_decay_after"], b["lr_floor"],
            b["features"]) == ("huawei-noah/TinyBERT_General_4L_312D", 0.3, 3.0, 32, 3e-4, 1e-4, "pooled")
    assert (g["model_name"], g["lam"], g["lr_bump"], g["batch_size"], g["weight_decay_after"], g["lr_floor"]) == \
        ("distilgpt2", 0.03, 2.0, 64, 1e-4, 5e-5)


def _manual(model, batch):
    """The classifier's input by hand from the encoder's outputs, and the model's own logits."""
    with torch.no_grad():
        if hasattr(model, "bert"):
            hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                token_type_ids=batch.get("token_type_ids")).last_hidden_state
            cls = hidden[:, 0]
            pooled = torch.tanh(model.bert.pooler.dense(cls))
            return {"pooled": pooled, "cls": cls}, model(**batch).logits
        hidden = model.transformer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        last = torch.tensor([int(m.nonzero().max()) for m in batch["attention_mask"]])  # last non-padding token
        return {"last": hidden[torch.arange(len(hidden)), last]}, model(**batch).logits


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_features_are_the_classifiers_input(name, tiny_text_models, tiny_sst):
    """The features the loop regularises and the evaluation measures, against a manual forward pass: BERT's
    tanh(pooler(CLS)) (and with --features cls the pre-pooler CLS state), GPT-2's last non-padding token after
    ln_f; the head applied to them gives the model's logits (so they are its input)."""
    torch.manual_seed(0)
    model, tokenizer = load_text_classifier(str(tiny_text_models[name]), 5, 0.0, "classifier" if name == "bert" else "score")
    model.eval()
    head = model.classifier if name == "bert" else model.score
    texts, labels = tiny_sst[1]["train"]
    data = {"train": (texts, torch.tensor(labels)), "val": (texts[:6], torch.tensor(labels[:6]))}
    config = {"max_length": 16, "batch_size": 8}
    task = text_task(model, head, tokenizer, data, config, torch.device("cpu"))
    encodings = encode(tokenizer, texts, 16)
    batch = padded_batch(tokenizer, encodings, range(8), torch.device("cpu"))
    assert (batch["attention_mask"] == 0).any(), "the batch must have padding for the GPT-2 check to mean anything"
    expected, logits = _manual(model, batch)
    with torch.no_grad():
        phi, z = task.forward(model, batch)
        torch.testing.assert_close(z, logits)
        torch.testing.assert_close(phi, expected["pooled" if name == "bert" else "last"])
        torch.testing.assert_close(head(phi), logits, rtol=1e-5, atol=1e-6)
    if name == "bert":
        cls_task = text_task(model, head, tokenizer, data, config, torch.device("cpu"), model.bert.pooler.dense)
        with torch.no_grad():
            torch.testing.assert_close(cls_task.forward(model, batch)[0], expected["cls"])
    # the evaluation's train split is the same forward pass over all texts
    row = task.evaluate()
    with torch.no_grad():
        full = padded_batch(tokenizer, encodings, range(len(texts)), torch.device("cpu"))
        all_logits = model(**full).logits
    assert row["train_acc"] == pytest.approx((all_logits.argmax(1) == data["train"][1]).double().mean().item())
    assert row["train_loss"] == pytest.approx(F.cross_entropy(all_logits, data["train"][1]).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_capped_normalised_term_saturates_at_720_and_the_loss_is_the_originals(name, tiny_text_models, tiny_sst):
    """A classifier with equal rows, projected to the Frobenius cap 30, gives uniform probabilities on every
    text: the regulariser (temperature 2, unit-normalised features) is 30^2 (1 - 1/5) = 720 and the loss with
    lambda 0.3 is log 5 - 0.3 * 720 = -214.39, the original TinyBERT run's plateau (docs/original_code.md §6.1)."""
    torch.manual_seed(0)
    head_name = "classifier" if name == "bert" else "score"
    model, tokenizer = load_text_classifier(str(tiny_text_models[name]), 5, 0.0, head_name)
    head = getattr(model, head_name)
    with torch.no_grad():
        head.weight.copy_(torch.randn(1, head.weight.shape[1]).expand_as(head.weight) * 100)
        if head.bias is not None:
            head.bias.zero_()
    cap_weight_(head.weight, 30.0)
    assert head.weight.norm().item() == pytest.approx(30.0)
    texts, labels = tiny_sst[1]["train"]
    config = {"max_length": 16, "batch_size": 8, "lam": 0.3, "temperature": 2.0, "normalise_features": True}
    task = text_task(model, head, tokenizer, {"train": (texts, torch.tensor(labels))}, config, torch.device("cpu"))
    for inputs, y in task.batches(torch.Generator().manual_seed(0)):
        phi, logits = task.forward(model, inputs)
        loss, reg, _ = rf_terms(F.cross_entropy(logits, y), phi, head.weight, logits, config, regularise=True)
        assert reg.item() == pytest.approx(720.0, rel=1e-5)
        assert loss.item() == pytest.approx(math.log(5) - 0.3 * 720, rel=1e-5)


def test_local_jsonl_csv_and_the_datasets_route_read_the_same_rows(tiny_sst, tmp_path):
    folder, made = tiny_sst
    as_csv = tmp_path / "csv"
    as_csv.mkdir()
    write_text_split(as_csv / "train", 40, 0, fmt="csv")
    write_text_split(as_csv / "validation", 20, 1, fmt="csv")
    jsonl = load_text_splits("unused", folder, 5)
    csv = load_text_splits("unused", as_csv, 5)
    hub = load_text_splits(str(folder), None, 5)  # datasets.load_dataset on a local folder: the Hub code path
    for split in ("train", "val"):
        texts, labels = made[split]
        for loaded in (jsonl, csv, hub):
            assert loaded[split][0] == texts and loaded[split][1].tolist() == labels
    subset = load_text_splits("unused", folder, 5, train_subset=7, seed=1)  # 8 rows a class: 1.4 each
    assert torch.bincount(subset["train"][1], minlength=5).tolist() == [2, 2, 1, 1, 1]  # largest remainders, ties low
    rows = [made["train"][0].index(text) for text in subset["train"][0]]
    assert rows == sorted(rows) and [made["train"][1][i] for i in rows] == subset["train"][1].tolist()
    assert subset["val"][0] == made["val"][0]
    from common.text.data import main as export
    export([str(folder), str(tmp_path / "exported")])
    again = load_text_splits("unused", tmp_path / "exported", 5)
    assert again["train"][0] == made["train"][0] and again["val"][1].tolist() == made["val"][1]


def test_head_only_trains_the_classifier_alone_and_the_gpt2_checks(tiny_text_models, tiny_sst, tmp_path, capsys):
    from rf_gpt2 import train

    flags = _flags(tiny_text_models["gpt2"], tiny_sst[0], tmp_path, "--head_only", "--lam", "1", "--pretrained")
    train.main(flags)
    trained = load_checkpoint(train.parse_args(flags).run_dir / "checkpoint.pt")["model"]
    import transformers
    start = transformers.GPT2Model.from_pretrained(tiny_text_models["gpt2"]).state_dict()
    assert all(torch.equal(trained[f"transformer.{k}"], v) for k, v in start.items() if f"transformer.{k}" in trained)
    assert sum(f"transformer.{k}" in trained for k in start) > 10
    full = _flags(tiny_text_models["gpt2"], tiny_sst[0], tmp_path, "--lam", "1", "--pretrained")
    train.main(full)
    moved = load_checkpoint(train.parse_args(full).run_dir / "checkpoint.pt")["model"]
    assert not torch.equal(moved["transformer.h.0.attn.c_attn.weight"], start["h.0.attn.c_attn.weight"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # a BERT has no `score` layer
        train.main(_flags(tiny_text_models["bert"], tiny_sst[0], tmp_path / "out"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "has no linear layer 'score'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("what", ["model", "data"])
def test_without_the_hub_a_missing_model_or_data_set_is_one_line_and_writes_nothing(what, tiny_text_models, tiny_sst,
                                                                                     tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    flags = ["--preset", "paper", *QUIET, "--out_dir", str(tmp_path / "out")]
    if what == "model":
        flags += ["--model_name", "no-such-org/no-such-model", "--data_dir", str(tiny_sst[0])]
        message = "cannot load the model 'no-such-org/no-such-model'"
    else:
        flags += ["--model_name", str(tiny_text_models["bert"])]
        message = "cannot load the data set 'SetFit/sst5'"
    proc = subprocess.run([sys.executable, "-m", "rf_bert.train", *flags], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "--model_name PATH" in proc.stderr or "--data_dir DIR" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("experiment, figure", [("rf_bert", "fig16"), ("rf_gpt2", "fig18")])
def test_figs_16_to_19_from_smoke_logs(experiment, figure, tiny_text_models, tiny_sst, tmp_path, capsys):
    import importlib

    train = importlib.import_module(f"{experiment}.train")
    model = tiny_text_models["bert" if experiment == "rf_bert" else "gpt2"]
    flags = _flags(model, tiny_sst[0], tmp_path)
    for extra in ([], ["--regularizer", "none", "--baseline_same_schedule"]):
        train.main(flags + extra)
    out = importlib.import_module(f"{experiment}.plot").main(["--seeds", "42", *flags])
    assert (out / f"{figure}.png").stat().st_size > 20_000
    rows = read_metrics(train.parse_args(flags).run_dir / "metrics.jsonl")
    assert [r["regularised"] for r in rows] == [True, False, False]
    assert json.loads((train.parse_args(flags).run_dir / "config.json").read_text())["config"]["model_name"] == str(model)
