"""StyleGAN on your own images: mapping network, AdaIN styles, noise inputs, style mixing and
truncation (Karras et al. 2019) at small scale, as a task plugin registered through the ``orch``
entry-point group."""

from __future__ import annotations

from orchestrator import Artifact, HumanBaseline, Plot, Stage, Task, hookimpl, split_metrics

HUMAN = HumanBaseline(
    error=0.0,
    source=("no human judgement of generated images is published for this data; the report replaces this "
            "placeholder with the real-vs-real floor: the FID between two sets of real images of the same "
            "sizes, in the same feature space"),
)


def build_task() -> Task:
    from orch_stylegan import stages
    from orch_stylegan.commands import generate_command
    from orch_stylegan.params import StyleGANParams

    return Task(
        name="stylegan",
        description="StyleGAN: mapping network, AdaIN styles, noise, style mixing, truncation; FID/KID offline",
        params_model=StyleGANParams,
        metric="fid",
        metrics=(*split_metrics("kid"), "untrained_val_fid", "untrained_val_kid", "val_fid_psi", "floor_fid",
                 "floor_fid_dev", "floor_kid", "feature_val_acc", "feature_task_labels", "images_per_s", "kimg",
                 "params_d", "params_g", "resumed_from_epoch", "train_seconds", "channels", "resolution", "n_*"),
        human=HUMAN,
        stages=(
            Stage("prepare", stages.prepare, ("data", "resolution", "channels", "fit", "max_images", "eval_images",
                                              "bs"),
                  description="load images (IDX or folder), fit to the resolution, hold out train-dev and val"),
            Stage("features", stages.features, ("feature_epochs", "eval_images"), inputs=("prepare",),
                  description="train the FID/KID feature extractor; real-vs-real floor"),
            Stage("train", stages.train, (*stages.TRAIN_KEYS, "resolution", "checkpoints", "eval_images"),
                  inputs=("prepare", "features"), tracked=True, checkpoint_ignores=("epochs",),
                  description="the GAN, with a sample grid and FID every epoch; resumes from a checkpoint",
                  plot=Plot(("train_dev_fid",), x="kimg", title="stylegan: FID against held-out real images",
                            y_label="FID")),
            Stage("evaluate", stages.evaluate, ("eval_images", "psi"), inputs=("features", "train"),
                  description="FID and KID per split, with truncation, and of an untrained generator"),
            Stage("report", stages.report, ("psi", "cutoff", "eval_images"),
                  inputs=("prepare", "features", "train", "evaluate"),
                  description="style-mixing, truncation, noise and interpolation grids; curves; bias/variance"),
        ),
        artifacts=(
            Artifact("generator.*", "model", "train", "the EMA generator: state_dict and config (orchestrator.load_model)"),
            Artifact("grids/epoch_*.png", "image", "train", "fixed-latent samples after every epoch"),
            Artifact("*.png", "plot", "report", "samples, style mixing, truncation, noise, interpolation, curves"),
            Artifact("evaluation.md", "report", "report", "FID/KID table: generator, untrained generator, real floor"),
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
