"""The Python API in one page: a conditional space, a hands-on kernel from its text form, and ten
ask/tell steps against a function of your own. No GUI; the README's "Python API" section.

Run: ``python examples/python_api.py [--out DIR]`` (about 10 s on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import lla_studio as lla


def train(config: dict) -> float:
    """Stands in for a training run: a validation loss that depends on the optimizer's branch."""
    loss = (math.log10(config["lr"]) + 2.5) ** 2 + 0.1 * config["layers"]
    if config["optimizer"] == "sgd":  # momentum exists only on this branch
        loss += 2.0 * (config["momentum"] - 0.9) ** 2
    return loss


def build_session() -> lla.Session:
    sgd = (lla.Condition("optimizer", ("sgd",)),)
    space = lla.SearchSpace([
        lla.ChoiceParameter("optimizer", ("adam", "sgd")),
        lla.RealParameter("lr", 1e-4, 1e-1, log=True),
        lla.RealParameter("momentum", 0.5, 0.99, conditions=sgd),  # active only for sgd
        lla.IntegerParameter("layers", 1, 4),
    ])
    transforms = lla.TransformChain((lla.OneHotStep("optimizer"), lla.LogStep(("lr",))))
    # One belief per term: the learning rate's effect, plus a momentum effect that only the sgd
    # branch has (a product with the sgd indicator), plus the depth.
    kernel = lla.parse_kernel(
        "scale(matern52(log_lr)) + scale(rbf(optimizer_sgd) * matern52(momentum)) + scale(matern52(layers))"
    )
    return lla.Session(
        space,
        transforms,
        kernel=kernel,
        objective=lla.ObjectiveSpec(direction="minimize"),
        acquisition=lla.AcquisitionSpec(num_restarts=4, raw_samples=128),
        loop=lla.LoopSettings(budget=10, initial_design=4, seed=0),
        name="python-api",
    )


def main() -> lla.Study:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="folder for the session file")
    args = parser.parse_args()

    study = lla.Study(build_session(), objective=train)
    for step in range(10):  # four Sobol configurations, then six GP + LogEI proposals
        (trial,) = study.suggest()
        done = study.tell(trial.id, train(trial.config))
        print(f"{step:2d} {trial.source:7s} {done.value:8.4f}  {trial.config}")
    best = study.best()
    print("best:", best.value, best.config)
    out = args.out or Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    path = lla.save_session(study.session, out / "python_api.json")
    print("saved", path, "(lla-studio", path, "opens it in the studio)")
    return study


if __name__ == "__main__":
    main()
