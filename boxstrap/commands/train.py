"""Train the class-map classifier on a prepared dataset (``boxstrap prepare``) and write a model folder.

Phase 1 trains the head on cached features of the frozen backbone; phase 2, when
--fine-tune-from is given, fine-tunes the backbone from that layer on at a low learning rate on
the same cached features. Both stop early on the valid loss; the valid and test accuracy of this
split run is the estimate metrics.json reports. Then, unless --ship split, the model saved is
trained again the same way on every photo (train + valid + test) for the epochs the split run
kept. An interrupted run resumes when the same command is run again.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from boxstrap.commands._ray import add_ray_arguments, ray_options

__all__ = ["HELP", "NAME", "add_arguments", "build_config", "run"]

NAME = "train"
HELP = "train the classifier (a backbone + class-map head) on a prepared dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from classifier.backbones.registry import BACKBONES, get_backbone
    from classifier.model import HEADS
    from classifier.train_config import HEAD_LOSSES, SHIP_CHOICES, TrainConfig

    defaults = TrainConfig()
    spec = get_backbone(defaults.backbone)
    parser.add_argument("manifest_dir", type=Path, help="folder holding manifest.json (from `boxstrap prepare`)")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--config", type=Path, help="a train_config.json to start from (flags override it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_ray_arguments(parser)
    parser.add_argument("--backbone", choices=sorted(BACKBONES), help=f"(default {defaults.backbone})")
    parser.add_argument("--weights", help=f"backbone start: one of {', '.join(spec.weight_choices)} (the default "
                                          f"{defaults.weights} works offline), or a weights file")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help=f"network input, multiples of {spec.size_multiple} (default {defaults.input_size[0]} "
                             f"{defaults.input_size[1]})")
    parser.add_argument("--head", choices=HEADS, help=f"class-map head: the plain 1x1 on the backbone's "
                                                      f"{spec.feature_layer} (needed for --fine-tune-from), or "
                                                      "several depths through a hidden 1x1 layer (better "
                                                      "classifier, worse boxes on the block photos) "
                                                      f"(default {defaults.head})")
    parser.add_argument("--head-hidden", type=int, help=f"multilevel head width (default {defaults.head_hidden})")
    parser.add_argument("--pooling", choices=("lse", "max", "avg"), help=f"class-map pooling (default {defaults.pooling})")
    parser.add_argument("--sharpness", type=float, help=f"log-sum-exp sharpness r (default {defaults.sharpness})")
    parser.add_argument("--head-loss", choices=HEAD_LOSSES, help=f"(default {defaults.head_loss})")
    parser.add_argument("--dropout", type=float, help=f"(default {defaults.dropout})")
    parser.add_argument("--views", type=int, help=f"cached views per training image (default {defaults.views})")
    parser.add_argument("--head-epochs", type=int, help=f"(default {defaults.head_epochs})")
    parser.add_argument("--head-learning-rate", type=float, help=f"(default {defaults.head_learning_rate})")
    parser.add_argument("--head-batch-size", type=int, help=f"(default {defaults.head_batch_size})")
    parser.add_argument("--fine-tune-from", help="first backbone layer to fine-tune, e.g. "
                                                 f"{list(spec.fine_tune_cuts)[-1]}; 'none' for no fine-tuning "
                                                 f"(default {defaults.fine_tune_from})")
    parser.add_argument("--fine-tune-epochs", type=int, help=f"(default {defaults.fine_tune_epochs})")
    parser.add_argument("--fine-tune-learning-rate", type=float,
                        help=f"(default {defaults.fine_tune_learning_rate})")
    parser.add_argument("--batch-size", type=int, help=f"(default {defaults.batch_size})")
    parser.add_argument("--patience", type=int, help=f"early-stopping patience (default {defaults.patience})")
    parser.add_argument("--no-class-weights", dest="class_weights", action="store_false", default=None,
                        help="do not weight classes by inverse frequency")
    parser.add_argument("--seed", type=int, help=f"(default {defaults.seed})")
    parser.add_argument("--cache-dir", help="keep the feature cache here (default: a work folder beside --out, "
                                            "removed after success)")
    parser.add_argument("--ship", choices=SHIP_CHOICES,
                        help="the model saved: 'all' is trained again on train + valid + test for the epochs "
                             "the split run kept, 'split' is the split run's (trained on train only, the one "
                             f"the accuracy is measured on) (default {defaults.ship})")
    parser.add_argument("--tensorboard", action="store_true", default=None,
                        help="write TensorBoard logs into MODEL_DIR/logs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_config(args: argparse.Namespace):
    """Defaults, then --config, then flags (later wins)."""
    from classifier.train_config import TrainConfig, with_backbone
    from groundwork.config import load_config

    config = load_config(TrainConfig, args.config) if args.config else TrainConfig()
    changes = {}
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            changes[field.name] = tuple(value) if isinstance(value, list) else value
    if changes.get("fine_tune_from") == "none":
        changes["fine_tune_from"] = None
    # Another backbone takes its own default weights, widths and context; flags given still win.
    config = with_backbone(config, changes.pop("backbone", config.backbone))
    return dataclasses.replace(config, **changes)


def run(args: argparse.Namespace) -> int:
    import json

    from boxstrap.summary import accuracy_text, shipped_model_text
    from classifier.train import train

    config = build_config(args)
    out = train(args.manifest_dir, args.out, config, overwrite=args.overwrite, verbose=0 if args.quiet else 1,
                ray=ray_options(args))
    metrics = json.loads((out / "metrics.json").read_text())
    accuracy = ", ".join(f"{split} {accuracy_text(metrics[split])}" for split in ("valid", "test") if split in metrics)
    print(f"accuracy (split run's estimate): {accuracy}")
    print(shipped_model_text(metrics["shipped_model"]))
    print(f"wrote model to {out}")
    for name in ("model.keras", "metrics.json", "training_curves.png", "confusion_matrix.png"):
        print(f"  {out / name}")
    return 0
