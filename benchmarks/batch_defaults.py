"""Batch size and learning rate per family, chosen by measurement: speed next to validation loss.

Each row is one real ``train()`` run, as ``atb train model BTCUSDT --model-type NAME --batch-size B``
runs it (bundled BTCUSDT 1h sample, early stopping with the default patience, the family's default
preset), with the learning rate scaled from the preset's by ``sqrt(B / 128)`` (the usual rule for
Adam) unless ``--no-scale``. It prints wall seconds (whole command), fit seconds, epochs, the best
epoch, training windows/s, the best validation loss and the test skill against persistence, all on
the same chronological splits, so a faster batch is only a better default when its validation loss
is not worse.

Usage:
    python benchmarks/batch_defaults.py [--models tcn lstm] [--batch-sizes 64 128 256] [--patience 3 5]
        [--settings 128:5 128:3 256:5] [--precision float32 mixed_bfloat16] [--fused on off] [--seeds 42 1 2]
        [--days 365] [--no-scale]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FAMILIES = ["lstm", "cnn_lstm", "tcn", "tcn_attention", "attention_lstm"]
REFERENCE_BATCH = 128
REFERENCE_PATIENCE = 5


def run(model: str, batch: int, scale: bool, days: int | None, patience: int = 5, precision: str = "auto",
        fused: bool = True, seed: int = 42) -> dict:
    """One training run through the pipeline; the figures of the table's row."""
    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.models.registry import get_spec
    from ml.training_pipeline.pipeline import train, training_precision

    base_lr = get_spec(model).variants["default"].get("learning_rate", 1e-3)
    lr = base_lr * math.sqrt(batch / REFERENCE_BATCH) if scale else base_lr
    with tempfile.TemporaryDirectory() as models_dir:
        start = time.perf_counter()
        result = train(TrainingConfig(symbol="BTCUSDT", model_type=model, batch_size=batch, learning_rate=lr,
                                      patience=patience, days=days, models_dir=models_dir, precision=precision,
                                      fused_recurrence=fused, seed=seed),
                       verbose=0)
        meta_precision = training_precision(result.config)
        wall = time.perf_counter() - start
    val = result.history["val_loss"]
    epochs = len(val)
    return {"model": model, "batch": batch, "patience": patience, "precision": meta_precision, "fused": fused,
            "seed": seed, "lr": lr, "wall_s": wall, "fit_s": result.timings["fit_s"],
            "epochs": epochs, "best_epoch": val.index(min(val)) + 1, "best_val_loss": min(val),
            "windows_s": epochs * next(v for k, v in result.row_counts.items() if k.startswith("train")) / result.timings["fit_s"],
            "skill": result.report["skill"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=FAMILIES)
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[64, 128, 256])
    parser.add_argument("--days", type=int, default=None, help="last N days of the sample (default: all of it)")
    parser.add_argument("--patience", nargs="*", type=int, default=[5], help="early-stopping patience values")
    parser.add_argument("--precision", nargs="*", default=["auto"], help="precisions to run (auto, float32, "
                        "mixed_bfloat16)")
    parser.add_argument("--fused", nargs="*", default=["on"], choices=["on", "off"],
                        help="LSTMs in the fused kernel where faster (on, the default) or Keras' loop (off)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[42])
    parser.add_argument("--settings", nargs="*", default=None, metavar="BATCH:PATIENCE",
                        help="explicit runs instead of every batch size x patience, e.g. 128:5 128:3 256:5")
    parser.add_argument("--no-scale", action="store_true", help="keep the preset's learning rate at every batch")
    args = parser.parse_args(argv)

    rows = []
    for model in args.models:
        settings = ([tuple(int(v) for v in pair.split(":")) for pair in args.settings] if args.settings else
                    [(batch, patience) for batch in args.batch_sizes for patience in args.patience])
        for batch, patience in settings:
            for precision, fused, seed in ((p, f, s) for s in args.seeds for p in args.precision for f in args.fused):
                rows.append(run(model, batch, not args.no_scale, args.days, patience, precision, fused == "on", seed))
                r = rows[-1]
                print(f"  done {model} batch {batch} patience {patience} {r['precision']} fused {fused} seed {seed}: "
                      f"{r['wall_s']:.0f} s, best val_loss {r['best_val_loss']:.5f}", flush=True)
    print(f"\nbundled BTCUSDT 1h{'' if args.days is None else f', last {args.days} days'}; learning rate "
          f"{'preset x sqrt(batch/128)' if not args.no_scale else 'the preset'}")
    print("| model | batch | patience | precision | fused | seed | lr | wall s | fit s | epochs | best epoch | fit windows/s | best val_loss | "
          "speed vs batch 128, patience 5, float32, unfused | skill |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = next((x for x in rows if x["model"] == r["model"] and x["batch"] == REFERENCE_BATCH and x["seed"] == r["seed"]
                    and x["patience"] == REFERENCE_PATIENCE and x["precision"] == "float32" and not x["fused"]), None)
        ratio = f"{ref['wall_s'] / r['wall_s']:.2f}x" if ref else "-"
        print(f"| {r['model']} | {r['batch']} | {r['patience']} | {r['precision']} | {'on' if r['fused'] else 'off'} | "
              f"{r['seed']} | {r['lr']:.2e} | {r['wall_s']:.0f} | {r['fit_s']:.0f} | "
              f"{r['epochs']} | "
              f"{r['best_epoch']} | {r['windows_s']:,.0f} | {r['best_val_loss']:.5f} | {ratio} | {r['skill']:+.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
