"""Fixtures shared by the test files: tiny data sets in the real formats, made here."""

import gzip
import pickle

import numpy as np
import pytest
import torchvision


def write_idx(path, array, compress):
    """An idx file (MNIST format) of unsigned bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.fixture
def tiny_fashion_mnist(tmp_path):
    """40 training and 20 test images in the four standard idx files: (folder, {train: (images, labels)})."""
    rng = np.random.default_rng(0)
    arrays = {}
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for train, n in ((True, 40), (False, 20)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        prefix = "train" if train else "t10k"
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, compress=False)  # plain file also found
        arrays[train] = images, labels
    return folder, arrays


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar10" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)  # rows: R plane, G plane, B plane
        labels = rng.integers(0, 10, size=4).tolist()
        with open(root / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        batches[name] = data, labels
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # The archive is ours, so torchvision's MD5 check of the real files cannot pass: skip only that.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    return tmp_path / "cifar10", batches


TEXT_WORDS = ["awful", "bad", "fine", "good", "great"]  # label k: a text with word k of this list
FILLER = "the a film movie plot is was very not".split()


def write_text_split(path, n, seed, fmt="jsonl"):
    """n texts of the 5 labels (the label's word among filler words) as <path>.jsonl or .csv: (texts, labels)."""
    import csv
    import json

    rng = np.random.default_rng(seed)
    labels = [i % 5 for i in range(n)]
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, size=int(rng.integers(2, 9))))
        words.insert(int(rng.integers(0, len(words) + 1)), TEXT_WORDS[label])
        texts.append(" ".join(words))
    if fmt == "jsonl":
        path.with_suffix(".jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n"
                                                      for t, y in zip(texts, labels)))
    else:
        with open(path.with_suffix(".csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label", "label_text"])
            writer.writerows([t, y, TEXT_WORDS[y]] for t, y in zip(texts, labels))
    return texts, labels


@pytest.fixture
def tiny_sst(tmp_path):
    """A made 5-class text data set in the local-file format: train.jsonl (40 rows), validation.jsonl (20)."""
    folder = tmp_path / "sst"
    folder.mkdir()
    return folder, {"train": write_text_split(folder / "train", 40, 0), "val": write_text_split(folder / "validation", 20, 1)}


def _bert_tokenizer():
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TEXT_WORDS, *FILLER]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                             special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"), len(words)


def _gpt2_tokenizer():
    """Byte-level BPE without merges (one token per byte) and GPT-2's end-of-text token, no padding token."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    eos = "<|endoftext|>"
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=eos, bos_token=eos,
                                                unk_token=eos), len(vocab)


@pytest.fixture(scope="session")
def tiny_text_models(tmp_path_factory):
    """Randomly initialised tiny BERT and GPT-2 (a few ten thousand parameters) with tokenizers made here, each
    saved with save_pretrained: {"bert": folder, "gpt2": folder}, loadable by AutoModelForSequenceClassification."""
    import torch
    import transformers

    root = tmp_path_factory.mktemp("text_models")
    torch.manual_seed(0)
    tokenizer, vocab = _bert_tokenizer()
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=vocab, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64))
    bert.save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    tokenizer, vocab = _gpt2_tokenizer()
    gpt2 = transformers.GPT2Model(transformers.GPT2Config(
        vocab_size=vocab, n_embd=16, n_layer=2, n_head=2, n_positions=64, bos_token_id=vocab - 1,
        eos_token_id=vocab - 1))
    gpt2.save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    return {"bert": root / "bert", "gpt2": root / "gpt2"}
