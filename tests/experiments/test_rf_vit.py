"""rf_vit: the ViT's features are the classifier's input, ImageNet-100 from an ImageFolder the test makes
(class list, transforms, missing data), the preset against the original's script, and a run on that folder.
What every experiment must do is in test_experiments.py."""

import numpy as np
import pytest
import torch
from PIL import Image

from common import UsageError, capture_features
from common.images import IMAGENET_NORM, load_image_folder, read_class_list, vision_transformer


def test_vit_tiny_shape_and_captured_features_are_the_heads_input():
    tiny = vision_transformer()  # ViT-Tiny: 192 wide, 12 layers, 3 heads, MLP 768, patch 16 at 224, 100 classes
    assert (tiny.hidden_dim, len(tiny.encoder.layers), tiny.encoder.layers[0].self_attention.num_heads,
            tiny.patch_size, tiny.image_size, tiny.heads.head.out_features) == (192, 12, 3, 16, 224, 100)
    assert tiny.encoder.layers[0].mlp[0].out_features == 768
    torch.manual_seed(0)
    model = vision_transformer(16, 4, 2, 2, 32, num_classes=10, in_channels=1).eval()
    x = torch.randn(5, 1, 16, 16)
    with torch.no_grad(), capture_features(model, model.heads.head) as cap:
        logits = model(x)
        tokens = model._process_input(x)  # (5, 16, 32) patch embeddings
        tokens = torch.cat([model.class_token.expand(5, -1, -1), tokens], dim=1)
        cls = model.encoder(tokens)[:, 0]  # the class token after the final LayerNorm
    assert torch.allclose(cap.features, cls, atol=1e-6) and torch.allclose(logits, model.heads.head(cls), atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        vision_transformer(30, 16)


@pytest.fixture
def tiny_imagenet(tmp_path):
    """An ImageFolder in ImageNet-100's layout with 3 listed classes (and one unlisted folder)."""
    rng = np.random.default_rng(0)
    wnids = ["n01749939", "n02869837", "n02488291"]
    for split, count in (("train", 4), ("val", 2)):
        for wnid in wnids + ["n09999999"]:
            folder = tmp_path / "in100" / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / f"{wnid}_{i}.JPEG")
    classes = tmp_path / "classes.txt"
    classes.write_text("# three of them\n" + "\n".join(wnids) + "\n")
    return tmp_path / "in100", classes, wnids


def test_imagenet100_folder_keeps_the_listed_classes_and_the_originals_transform(tiny_imagenet):
    from torchvision.transforms import functional as TF

    root, classes_file, wnids = tiny_imagenet
    assert read_class_list(classes_file) == wnids
    data = load_image_folder(root, read_class_list(classes_file), image_size=32, resize=36)
    assert data["train"].classes == sorted(wnids) and len(data["train"]) == 12 and len(data["val"]) == 6
    image, label = data["val"][0]
    path = data["val"].samples[0][0]
    pil = TF.center_crop(TF.resize(Image.open(path).convert("RGB"), 36), 32)  # Resize -> CenterCrop, on the image
    reference = TF.normalize(TF.to_tensor(pil), *IMAGENET_NORM)
    assert image.shape == (3, 32, 32) and label == 0 and torch.allclose(image, reference, atol=1e-5)
    with pytest.raises(UsageError, match="lacks 1 of the 4 class folders"):
        load_image_folder(root, wnids + ["n00000001"])
    with pytest.raises(UsageError, match="listed in --classes_file"):
        load_image_folder(root / "nothing", wnids)


def test_the_shipped_class_list_is_the_cmc_imagenet100():
    from rf_vit.train import CLASS_LIST

    wnids = read_class_list(CLASS_LIST)
    assert len(wnids) == len(set(wnids)) == 100 and all(w.startswith("n") and len(w) == 9 for w in wnids)
    assert wnids[:3] == ["n02869837", "n01749939", "n02488291"] and wnids[-1] == "n02090622"


def test_paper_preset_is_the_originals_script():
    from rf_vit import train

    config = train.parse_args(["--preset", "paper"]).config
    assert {k: config[k] for k in ("dataset", "image_size", "patch_size", "num_layers", "num_heads", "hidden_dim",
                                   "epochs", "batch_size", "lr", "momentum", "weight_decay", "lam", "temperature",
                                   "normalise_features", "cap", "max_norm", "unplug_epoch", "unplug_recipe",
                                   "lr_bump", "weight_decay_after", "lr_floor")} == \
        {"dataset": "imagenet100", "image_size": 224, "patch_size": 16, "num_layers": 12, "num_heads": 3,
         "hidden_dim": 192, "epochs": 300, "batch_size": 256, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
         "lam": 1e-2, "temperature": 2.0, "normalise_features": True, "cap": "frobenius", "max_norm": 150.0,
         "unplug_epoch": 150, "unplug_recipe": "repo", "lr_bump": 5.0, "weight_decay_after": 2e-4, "lr_floor": 1e-4}


def test_a_run_on_an_imagenet_folder_through_unplug(tiny_imagenet, tmp_path):
    from rf_vit import train

    root, classes_file, _ = tiny_imagenet
    flags = ["--data_dir", str(root), "--classes_file", str(classes_file), "--image_size", "32", "--num_layers", "1",
             "--hidden_dim", "24", "--epochs", "3", "--unplug_epoch", "2", "--batch_size", "5", "--threads", "1",
             "--no_progress", "--out_dir", str(tmp_path / "out")]
    rows = train.main(flags)
    assert [r["regularised"] for r in rows] == [True, True, False] and rows[-1]["step"] == 9  # 12 images, batch 5
    assert all(0 <= r["val_acc"] <= 1 and np.isfinite(r["train_rf_bound"]) for r in rows)
    assert len(rows[0]["train_angles"]) == 3 and rows[0]["w_norm"] <= 150
