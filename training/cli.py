"""``upscaler train``: registered through the ``upscaler.commands`` entry point."""

from __future__ import annotations

import argparse

from upscaler.cli.common import non_negative_int, positive_int

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = sub.add_parser(
        "train",
        help="train a model from a TOML config",
        description="Train (or resume training) a model. Resumes from <out>/last.pt when it exists.",
    )
    p.add_argument("--config", required=True, help="TOML config, e.g. training/configs/x4-fast.toml")
    p.add_argument("--data-root", help="base folder for the config's relative data folders")
    p.add_argument("--out", help="output folder (overrides run.out)")
    p.add_argument("--steps", type=positive_int, help="total steps (overrides optim.steps)")
    p.add_argument("--init", help="start from this model (built-in name or .safetensors): fine-tuning")
    p.add_argument("--device", help="cpu, cuda or cuda:N (overrides run.device)")
    p.add_argument("--workers", type=non_negative_int, help="data-loading processes (overrides data.workers)")
    p.add_argument("--restart", action="store_true", help="discard an existing checkpoint and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        from training.config import load_config, validate_config
        from training.trainer import Trainer
    except ImportError as exc:
        raise RuntimeError(f"training needs the 'train' extra: pip install 'upscaler[train]' ({exc})") from None
    import logging

    config = load_config(args.config)
    if args.out:
        config.run.out = args.out
    if args.steps is not None:
        config.optim.steps = args.steps
        config.optim.warmup_steps = min(config.optim.warmup_steps, args.steps - 1)
    if args.device:
        config.run.device = args.device
    if args.init:
        config.model.init = args.init
    if args.workers is not None:
        config.data.workers = args.workers
    validate_config(config, "after command-line overrides")
    logging.getLogger("training").setLevel(logging.INFO)
    if config.data.degradation == "sequence":  # temporal models: rendered sequences, unrolled in time
        from training.temporal import TemporalTrainer as Trainer
    trainer = Trainer(config, data_root=args.data_root, restart=args.restart, progress=not args.no_progress)
    weights = trainer.run()
    print(f"weights: {weights}")
    return 0
