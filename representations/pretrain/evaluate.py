"""``mcrl-pretrain-eval RUN_DIR``: kNN (k=20, cosine) + logistic-regression probe of encoder.pt -> eval.json."""

from __future__ import annotations

import argparse
import sys

from .cli import USER_ERRORS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mcrl-pretrain-eval", description=__doc__)
    parser.add_argument("run_dir", help="an mcrl-pretrain run directory (with config.yaml and encoder.pt)")
    parser.add_argument("--k", type=int, default=None, help="kNN neighbours (default: the run's eval.k)")
    parser.add_argument("--train-limit", type=int, default=None, help="labelled train images for kNN / probe")
    parser.add_argument("--test-limit", type=int, default=None, help="test images")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (("k", args.k), ("train_limit", args.train_limit),
                                               ("test_limit", args.test_limit)) if value is not None}
    from .run import evaluate_run

    try:
        result = evaluate_run(args.run_dir, overrides, args.device)
    except USER_ERRORS as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"mcrl-pretrain-eval: error: {message}", file=sys.stderr)
        sys.exit(2)
    print(f"{result['method']} on {result['data']}: kNN top-1 {result['knn_top1']:.2f}%, "
          f"linear top-1 {result['linear_top1']:.2f}% ({result['n_train']} train / {result['n_test']} test)")


if __name__ == "__main__":
    main()
