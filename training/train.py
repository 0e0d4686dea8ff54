"""Train SemanticHuman-HD, stage 1 or stage 2, on one CPU, one GPU or many (docs/method.md §6)::

    accelerate launch training/train.py --config training/configs/demo_stage1.yaml data_dir=DATA output_dir=runs/demo1
    accelerate launch training/train.py --config training/configs/demo_stage2.yaml data_dir=DATA \\
        stage1_pipeline=runs/demo1/pipeline output_dir=runs/demo2

``key=value`` arguments override the config's fields (``training/config.py`` lists and documents them);
unknown keys and bad values stop the run before any work. ``--resume_from_checkpoint latest`` continues
from the newest complete checkpoint in ``OUTPUT_DIR/checkpoints`` (or starts fresh if there is none).
The run ends with ``OUTPUT_DIR/pipeline``, a ``SemanticHumanPipeline.from_pretrained`` folder holding the
EMA weights (``push_to_hub=true hub_model_id=owner/name`` uploads it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (accelerate launch training/train.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # before anything else: the process restarts with its heap on huge pages
    from semantichuman_hd.host_memory import restart_with_huge_pages

    restart_with_huge_pages()

from training.config import load_config  # noqa: E402
from training.trainer import Trainer, TrainingError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="training/train.py",
        description="Two-stage adversarial training of SemanticHuman-HD (launch with `accelerate launch`).",
    )
    parser.add_argument("--config", help="YAML file of configuration keys (training/configs/*.yaml).")
    parser.add_argument(
        "--resume_from_checkpoint",
        help='"latest" (the newest complete checkpoint in OUTPUT_DIR/checkpoints, if any) or a checkpoint folder.',
    )
    parser.add_argument("--push_to_hub", action="store_true", help="Upload the final pipeline (needs hub_model_id=owner/name).")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="Configuration keys to override.")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + (["push_to_hub=true"] if args.push_to_hub else [])
    try:
        config = load_config(args.config, overrides)
    except (ValueError, FileNotFoundError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    try:
        trainer = Trainer(config)
        folder = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    except (ValueError, FileNotFoundError, TrainingError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 1
    if trainer.accelerator.is_main_process:
        print(f"Saved the EMA pipeline to {folder}; load it with SemanticHumanPipeline.from_pretrained({str(folder)!r}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
