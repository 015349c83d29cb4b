"""Model configuration: one frozen dataclass with the paper's defaults, and the Table 2 presets.

A checkpoint stores ``ModelConfig.to_dict()`` as JSON, so ``evaluate``/``predict`` need only
the checkpoint path.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from stae.config_check import Range, check_fields, choices, field_types
from stae.errors import StaeError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the spatio-temporal autoencoder (paper Sec. 3, Fig. 1)."""

    in_channels: Annotated[int, Range(1, 4)] = 1  # C of the frames: 1 (grayscale) or 3 (RGB)
    # Spatial encoder E: one conv-tanh-maxpool (CPD) block per entry, its filter count.
    # The decoder D mirrors it: nearest upsampling + conv per block, no nonlinearity.
    encoder_channels: Annotated[tuple[int, ...], Range(1, 1024)] = (32,)
    spatial_kernel: Annotated[int, Range(1, 31)] = 7  # E and D kernel size (Sec. 3.3: 7x7)
    # Memory: "conv" = ConvLSTM eq. (1); "fc" = fully-connected LSTM with peepholes
    # (Table 2 fc-* rows) on the flattened feature maps.
    memory: Literal["conv", "fc"] = "conv"
    memory_channels: Annotated[tuple[int, ...], Range(1, 1024)] = (45,)  # ConvLSTM filters per layer (Sec. 3.3: 45)
    memory_kernel: Annotated[int, Range(1, 31)] = 7  # ConvLSTM kernel (7x7)
    fc_hidden: Annotated[tuple[int, ...], Range(1, 16384)] = (2048,)  # fc memory: units per LSTM layer
    # fc memory only: the frame size (H, W) it is built for (flattening fixes it); the last
    # layer's units are reshaped to fc_hidden[-1] / (h*w) maps of the feature grid for Theta.
    fc_frame_size: Annotated[tuple[int, ...], Range(1, 1024)] = (64, 64)
    forget_bias: Annotated[float, Range(-100, 100)] = 1.0  # Sec. 4: forget-gate bias 1 (released code: 0)
    memory_init: Annotated[float, Range(0, 10)] = 0.08  # Sec. 4: memory weights ~ U(-0.08, 0.08)
    # Flow regressor Theta: two convs with large kernels (2 filters each), an optional
    # zero-initialised 1x1 conv (identity warp at the start), then one trainable scale
    # per flow channel.
    flow_kernel: Annotated[int, Range(1, 63)] = 15
    flow_hidden: Annotated[int, Range(1, 1024)] = 2
    flow_1x1: bool = True
    flow_scale_init: Annotated[float, Range(-1000, 1000)] = 1.0  # pixels of the feature grid per unit of Theta's output
    flow_clamp: Optional[Annotated[float, Range(0, lo_open=True)]] = None  # |flow| limit in feature-grid pixels (released: 7.75)
    # What the sampler S reads outside the feature map: "zeros" (the released code) or "border"
    # (the nearest edge feature). With zeros, a model can draw with the flow by pointing it off
    # the map (docs/model.md#warp-padding); border removes that shortcut.
    warp_padding: Literal["zeros", "border"] = "zeros"
    # Image-space output: "linear" (the paper's decoder, no nonlinearity; intensity losses)
    # or "sigmoid" (the decoder's output are logits of pixel probabilities; BCE on binary data).
    output: Literal["linear", "sigmoid"] = "linear"
    # Where GG+S warps (docs/model.md#image-space-head-option): "features" (the paper: warp x_t, D decodes the
    # prediction) or "image" (issue 13: warp the input frame Y_t at full resolution by the flow
    # upsampled from the feature grid; D, still on the warped features, supplies what warping
    # cannot, per the two switches below). Real footage needs a sharp predictor: warping features
    # and decoding blurs, warping pixels does not.
    head: Literal["features", "image"] = "features"
    # head="image": D adds a per-pixel residual (C channels) to the prediction (new content, light).
    image_residual: bool = True
    # head="image": D outputs one blend logit a per pixel; the prediction is
    # sigmoid(a) * warp(Y_t) + (1 - sigmoid(a)) * Y_t (+ residual): the model can learn where
    # NOT to move (static regions, occlusions), keeping the last frame there.
    image_mask: bool = True
    # block_matching: the memory also reads the motion observed between the last two input
    # frames (matching.py: a parameter-free cost volume and its soft-argmin, three channels beside
    # x_t; conv memory only). Off in the paper. matching_radius: the largest displacement tried,
    # image pixels; matching_window: the box over which squared differences are averaged (odd);
    # matching_refine: rounds of smoothing and Lucas-Kanade refinement of that flow (0: none);
    # matching_skip: Theta's output is added to that observed flow (a correction to the
    # constant-velocity guess) instead of being the flow itself.
    block_matching: bool = False
    matching_radius: Annotated[int, Range(1, 8)] = 3
    matching_window: Annotated[int, Range(1, 31)] = 9
    matching_refine: Annotated[int, Range(0, 8)] = 0
    matching_skip: bool = False
    # What a rollout (model.rollout, rollout training) feeds back after the first prediction:
    # "frames" (the prediction, re-encoded by E) or "features" (the warped features x_t the
    # decoder drew it from, so the memory never reads its own decoded blur). Off the paper;
    # features-head, no block matching. docs/training.md#rollout-training.
    rollout_feedback: Literal["frames", "features"] = "frames"
    # Performance options (docs/performance.md); they change speed and memory, not the function.
    # fft_conv and subpixel_decoder are on by default: they measured faster on a CPU for every
    # workload benchmarked (training at batch 1 and 16, streaming at 64x64 and 256x256); switch
    # them off (DIRECT) for the plain layers, e.g. on a GPU, where they were not measured.
    # fft_conv: compute the memory's and Theta's k x k convolutions with FFTs (fftconv.py), the
    # kernel spectra once per clip; equal to direct convolution up to float rounding (~1e-6).
    fft_conv: bool = True
    # recompute_steps: recompute each time step (E, memory step, Theta/warp/D) in the backward
    # pass instead of storing its activations (torch.utils.checkpoint): long clips (tau = 19)
    # train in the memory tau = 10 needs without it, for about one extra forward pass.
    # (Called checkpoint_time before 0.2; that key is still read, see RENAMED_KEYS.)
    recompute_steps: bool = False
    # subpixel_decoder: D's nearest-x2 upsampling + k x k conv as one conv on the low-resolution
    # map with 4 phase kernels + pixel shuffle (subpixel.py); same function up to
    # float rounding, half the multiply-adds, no 4x upsampled activation.
    subpixel_decoder: bool = True

    # ------------------------------------------------------------------ derived
    @property
    def depth(self) -> int:
        """Number of CPD blocks; frames must have H, W divisible by 2**depth."""
        return len(self.encoder_channels)

    @property
    def stride(self) -> int:
        return 2 ** self.depth

    @property
    def decoder_channels(self) -> int:
        """D's output channels: C (features head), or the image head's residual (C) and blend
        logit (1) -- 0 when the image head has neither, and D is not built."""
        if self.head == "features":
            return self.in_channels
        return self.in_channels * self.image_residual + int(self.image_mask)

    @property
    def memory_input_channels(self) -> int:
        """The memory's input channels: x_t's d, and the block matching's three when it is on."""
        from stae.model.matching import BlockMatching

        return self.feature_channels + (BlockMatching.out_channels if self.block_matching else 0)

    @property
    def feature_channels(self) -> int:
        """d, the channel count of the encoder's feature maps x_t (Sec. 3.1)."""
        return self.encoder_channels[-1]

    def validate(self) -> "ModelConfig":
        for name, tp in field_types(type(self)).items():
            allowed = choices(tp)
            if allowed and getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if not self.encoder_channels:
            raise ValueError("encoder_channels must have at least one block")
        for name, most in (("encoder_channels", 6), ("memory_channels", 8), ("fc_hidden", 8)):
            if len(getattr(self, name)) > most:
                raise ValueError(f"{name} must have at most {most} entries, got {len(getattr(self, name))}")
        if self.memory == "conv" and not self.memory_channels:
            raise ValueError("memory_channels must have at least one layer")
        if self.memory == "fc" and not self.fc_hidden:
            raise ValueError("fc_hidden must have at least one layer")
        if self.memory == "fc":
            if len(self.fc_frame_size) != 2 or any(n % self.stride for n in self.fc_frame_size):
                raise ValueError(
                    f"fc_frame_size must be (H, W) divisible by {self.stride}, got {self.fc_frame_size}")
            h, w = (n // self.stride for n in self.fc_frame_size)
            if self.fc_hidden[-1] % (h * w):
                raise ValueError(
                    f"fc_hidden[-1]={self.fc_hidden[-1]} must be a multiple of h*w={h * w} "
                    f"(the feature grid of a {self.fc_frame_size[0]}x{self.fc_frame_size[1]} frame)")
        if self.head == "image" and self.output != "linear":
            raise ValueError("head='image' predicts pixel values, not logits: it needs output='linear', "
                             f"got output={self.output!r}")
        if self.block_matching and self.memory != "conv":
            raise ValueError("block_matching needs memory='conv' (the matching is a map beside x_t)")
        if self.matching_skip and not self.block_matching:
            raise ValueError("matching_skip adds Theta's flow to the observed flow: it needs block_matching=true")
        if self.rollout_feedback == "features" and (self.head != "features" or self.block_matching):
            raise ValueError("rollout_feedback='features' feeds back warped features: it needs head='features' "
                             "and block_matching=false (both read the fed-back frame)")
        for k in ("spatial_kernel", "memory_kernel", "flow_kernel", "matching_window"):
            if getattr(self, k) % 2 != 1:
                raise ValueError(f"{k} must be odd (same padding), got {getattr(self, k)}")
        return self

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], section: str = "model") -> "ModelConfig":
        """Build from a dict (a config file's model section, a checkpoint's metadata), with the
        one config checker (config_check.py): unknown keys and wrong types are errors naming
        the key. Renamed keys of older versions are read under their new names."""
        d = upgrade_keys(d, section)
        try:
            return cls(**check_fields(cls, section, d)).validate()
        except StaeError:
            raise
        except (ValueError, TypeError) as e:
            raise StaeError(f"{section} config: {e}") from None

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes).validate()


# Table 2 variants. Counts for the conv-* rows reproduce the paper exactly (docs/model.md);
# the deeper conv variants have no 1x1 conv in Theta but keep the two scale scalars.
_PRESETS: dict[str, ModelConfig] = {
    "conv-1enc-1lstm": ModelConfig(),
    "conv-1enc-2lstm": ModelConfig(memory_channels=(64, 128), flow_1x1=False),
    "conv-2enc-1lstm": ModelConfig(encoder_channels=(16, 32), memory_channels=(64,), flow_1x1=False),
    "conv-2enc-2lstm": ModelConfig(encoder_channels=(16, 32), memory_channels=(64, 128), flow_1x1=False),
    # Our choice (the paper gives no decomposition of its 50,404,347): two CPD blocks of 16
    # filters, so a 64x64 frame gives 16x16x16 = 4,096 features; FC-LSTM(s) of 2,048 units with
    # peepholes; the last 2,048 outputs reshaped to 8x16x16 maps for Theta. 50,377,195
    # parameters (paper 50,404,347, -0.05%); the second layer adds exactly the paper's
    # fc-2enc-2lstm minus fc-2enc-1lstm difference (33,568,768): 83,945,963 (paper 83,973,115).
    "fc-2enc-1lstm": ModelConfig(encoder_channels=(16, 16), memory="fc", fc_hidden=(2048,), flow_1x1=False),
    "fc-2enc-2lstm": ModelConfig(encoder_channels=(16, 16), memory="fc", fc_hidden=(2048, 2048), flow_1x1=False),
}

VANILLA = "conv-1enc-1lstm"

# Keys of older versions, read under their new names (with a warning where a user wrote them).
RENAMED_KEYS: dict[str, str] = {"checkpoint_time": "recompute_steps"}


def upgrade_keys(d: dict[str, Any], section: str = "model", warn: bool = False) -> dict[str, Any]:
    """``d`` with renamed keys under their new names; ``warn`` prints one deprecation line per key."""
    out = dict(d)
    for old, new in RENAMED_KEYS.items():
        if old in out:
            if new in out:
                raise StaeError(f"config keys {section}.{old} and {section}.{new} are the same option; give only {new}")
            out[new] = out.pop(old)
            if warn:
                warnings.warn(f"config key {section}.{old} is now {section}.{new}; the old name goes in the next "
                              f"release", FutureWarning, stacklevel=3)
    return out

# The authors' released Lua code differs from the paper here (docs/model.md); apply with
# ``cfg.replace(**RELEASED_CODE)``. Off by default: the paper is the specification.
# The clamp: +-0.5 in normalised units on a 32-pixel grid = 0.5 * (32 - 1) / 2 pixels.
RELEASED_CODE: dict[str, Any] = {"forget_bias": 0.0, "flow_clamp": 7.75}

# The performance options that measured faster on a CPU (docs/performance.md), on by default,
# and the plain direct-convolution layers: ``cfg.replace(**DIRECT)``. Same function either way.
FAST: dict[str, Any] = {"fft_conv": True, "subpixel_decoder": True}
DIRECT: dict[str, Any] = {"fft_conv": False, "subpixel_decoder": False}


def presets() -> dict[str, ModelConfig]:
    """The named Table 2 variants (a copy; configs are frozen)."""
    return dict(_PRESETS)


def preset(name: str) -> ModelConfig:
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(_PRESETS)}") from None
