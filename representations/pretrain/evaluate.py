"""``mcrl-pretrain-eval RUN_DIR``: kNN (k=20, cosine) + logistic-regression probe of encoder.pt -> eval.json."""

from __future__ import annotations

import argparse

from ..core.errors import UserError, exit_on_user_error


@exit_on_user_error("mcrl-pretrain-eval")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mcrl-pretrain-eval", description=__doc__)
    parser.add_argument("run_dir", help="an mcrl-pretrain run directory (with config.yaml and encoder.pt)")
    parser.add_argument("--k", type=int, default=None, help="kNN neighbours (default: the run's eval.k)")
    parser.add_argument("--train-limit", type=int, default=None, help="labelled train images for kNN / probe")
    parser.add_argument("--test-limit", type=int, default=None, help="test images")
    parser.add_argument("--probe-holdout", default=None,  # checked where eval.probe_holdout is (run.py)
                        help="train clips that choose the probe's L2: random, whole sources or each source's latest "
                             "(default: the run's eval.probe_holdout)")
    parser.add_argument("--probe-gap", type=int, default=None,
                        help="with latest: rows before each source's cut left out of the fit")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an eval.json that was made with other settings")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (("k", args.k), ("train_limit", args.train_limit),
                                               ("test_limit", args.test_limit)) if value is not None}
    from .run import evaluate_run

    for key, value in overrides.items():
        if int(value) < 1:
            raise UserError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    if args.probe_gap is not None and args.probe_gap < 0:
        raise UserError(f"--probe-gap must be >= 0, got {args.probe_gap}")
    overrides.update({key: value for key, value in (("probe_holdout", args.probe_holdout),
                                                    ("probe_gap", args.probe_gap)) if value is not None})
    result = evaluate_run(args.run_dir, overrides, args.device, overwrite=args.overwrite)
    print(f"{result['method']} on {result['data']}: kNN top-1 {result['knn_top1']:.2f}%, "
          f"linear top-1 {result['linear_top1']:.2f}% ({result['n_train']} train / {result['n_test']} test)")


if __name__ == "__main__":
    main()
