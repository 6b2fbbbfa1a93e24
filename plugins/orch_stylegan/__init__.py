"""StyleGAN on your own images: mapping network, AdaIN styles, noise inputs, style mixing and
truncation (Karras et al. 2019) at small scale, as a task plugin registered through the ``orch``
entry-point group."""

from __future__ import annotations

from orchestrator import hookimpl
from orchestrator.task import Artifact, HumanBaseline, Stage, Task

HUMAN = HumanBaseline(
    error=0.0,
    source=("no human judgement of generated images is published for this data; the report replaces this "
            "placeholder with the real-vs-real floor: the FID between two sets of real images of the same "
            "sizes, in the same feature space"),
)


def build_task() -> Task:
    from orch_stylegan import stages
    from orch_stylegan.generate import generate_command
    from orch_stylegan.params import StyleGANParams

    k = lambda *names: tuple(f"stylegan.{n}" for n in names)  # noqa: E731
    return Task(
        name="stylegan",
        description="StyleGAN: mapping network, AdaIN styles, noise, style mixing, truncation; FID/KID offline",
        params_model=StyleGANParams,
        metric="fid",
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, k("data", "resolution", "channels", "fit", "max_images", "eval_images",
                                               "seed"),
                  description="load images (IDX or folder), fit to the resolution, hold out train-dev and val"),
            Stage("features", stages.features, k("feature_epochs", "eval_images", "seed"),
                  description="train the FID/KID feature extractor; real-vs-real floor"),
            Stage("train", stages.train, k(*stages.TRAIN_KEYS, "checkpoints", "eval_images"), tracked=True,
                  description="the GAN, with a sample grid and FID every epoch; resumes from a checkpoint"),
            Stage("evaluate", stages.evaluate, k("eval_images", "psi", "seed"),
                  description="FID and KID per split, with truncation, and of an untrained generator"),
            Stage("report", stages.report, k("psi", "cutoff"),
                  description="style-mixing, truncation, noise and interpolation grids; curves; bias/variance"),
        ),
        artifacts=(
            Artifact("generator.pt", "model", "state_dict of the EMA generator (with generator.json)"),
            Artifact("grids/epoch_NNN.png", "image", "fixed-latent samples after every epoch"),
            Artifact("style_mixing.png", "plot", "coarse / middle / fine styles of B copied into A"),
            Artifact("truncation.png", "plot", "psi = 1, 0.7, 0.5, 0, -0.5"),
            Artifact("noise.png", "plot", "same w, different noise; pixel std over noise draws"),
            Artifact("interpolation.png", "plot", "a linear path in W between two seeds"),
            Artifact("evaluation.md", "report", "FID/KID table: generator, untrained generator, real floor"),
            Artifact("report.md", "report", "bias/variance report"),
        ),
        space={
            "lr_g": {"low": 3e-4, "high": 1e-2, "scale": "log"},
            "lr_d": {"low": 3e-4, "high": 1e-2, "scale": "log"},
            "mix_prob": {"low": 0.0, "high": 1.0},
            "r1_gamma": {"low": 0.01, "high": 10.0, "scale": "log"},
        },
        commands={"generate": generate_command},
    )


@hookimpl
def orch_register_tasks() -> list[Task]:
    return [build_task()]
