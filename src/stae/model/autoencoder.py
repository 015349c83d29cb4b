"""The whole model (paper Fig. 1): it only orchestrates E, the memory, Theta, GG+S and D.

Per time step t::

    Y_t --E--> x_t --memory--> m_t --Theta--> T_t            (flow, feature-grid pixels)
    x_t --warp by T_t (GG + S, eq. 4)--> x~_{t+1} --D--> Y~_{t+1}
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from stae.model.config import ModelConfig, preset
from stae.errors import StaeError
from stae.model.flow import FlowRegressor
from stae.model.heads import image_prediction, init_image_decoder
from stae.model.matching import BlockMatching
from stae.model.memory import ConvLSTMMemory, FCLSTMMemory, LayerState
from stae.model.spatial import SpatialDecoder, SpatialEncoder
from stae.model.warp import warp

# The memory layers' (h, c), then -- with ``config.block_matching`` -- one more pair: the last
# input frame and a (B, 1, 1, 1) flag that it is real (0 in an exported zero state: no frame yet).
State = list[LayerState]


class StaeOutput(NamedTuple):
    """Outputs for every step of a clip. ``frames[:, t]`` predicts input frame t + 1."""

    frames: torch.Tensor  # (B, T, C, H, W) predicted next frames, image space
    flows: torch.Tensor  # (B, T, 2, h, w) backward flow T_t on the feature grid, pixels
    logits: torch.Tensor  # (B, T, C, H, W) raw decoder output (== frames for output="linear")


class SpatioTemporalAutoencoder(nn.Module):
    """Spatio-temporal video autoencoder with differentiable memory (Patraucean et al. 2015)."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        cfg = config.validate()
        self.config = cfg
        d = cfg.feature_channels
        # Each module takes its fast path (fft_conv, subpixel_decoder, recompute_steps: how it
        # computes, not what) in its constructor.
        self.encoder = SpatialEncoder(cfg.in_channels, cfg.encoder_channels, cfg.spatial_kernel)
        self.matching = (BlockMatching(cfg.matching_radius, cfg.matching_window, cfg.stride,
                                       cfg.matching_refine)
                         if cfg.block_matching else None)
        if cfg.memory == "conv":
            self.memory: nn.Module = ConvLSTMMemory(cfg.memory_input_channels, cfg.memory_channels, cfg.memory_kernel,
                                                    fft=cfg.fft_conv, recompute=cfg.recompute_steps)
        else:
            grid = (cfg.fc_frame_size[0] // cfg.stride, cfg.fc_frame_size[1] // cfg.stride)
            self.memory = FCLSTMMemory(d * grid[0] * grid[1], cfg.fc_hidden, grid, recompute=cfg.recompute_steps)
        self.flow = FlowRegressor(self.memory.out_channels, cfg.flow_kernel, cfg.flow_hidden,
                                  cfg.flow_1x1, cfg.flow_scale_init, cfg.flow_clamp, fft=cfg.fft_conv)
        # D: C output channels (the paper's head), or the image head's mask/residual (heads.py);
        # an image head with neither has no D.
        self.decoder = (SpatialDecoder(cfg.decoder_channels, cfg.encoder_channels, cfg.spatial_kernel,
                                       subpixel=cfg.subpixel_decoder) if cfg.decoder_channels else None)
        self.reset_parameters()

    # ------------------------------------------------------------------ set-up
    def reset_parameters(self) -> None:
        """Sec. 4: xavier for the non-memory convolutions (biases 0), U(-0.08, 0.08) for the
        memory with forget-gate bias 1 (``config.forget_bias``) and other gate biases 0."""
        for mod in (self.encoder, self.decoder):
            for m in (mod.modules() if mod is not None else ()):
                if isinstance(m, nn.Conv2d):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        if self.config.head == "image" and self.decoder is not None:
            init_image_decoder(self.decoder)
        self.flow.init_parameters()
        self.memory.init_parameters(self.config.memory_init, self.config.forget_bias)

    @property
    def stride(self) -> int:
        """Image pixels per feature-grid pixel (2**depth)."""
        return self.config.stride

    def check_frame_shape(self, shape: tuple[int, ...], what: str = "frame") -> None:
        """Reject shapes the model cannot take, naming the shape and what would fit."""
        c, h, w = shape[-3:]
        cfg = self.config
        s = cfg.stride
        if c != cfg.in_channels:
            raise StaeError(f"{what} of shape {tuple(shape)} has {c} channel(s); this model takes "
                            f"{cfg.in_channels} (C={cfg.in_channels})")
        if h % s or w % s or h == 0 or w == 0:
            fit = f"{max(s, h // s * s)}x{max(s, w // s * s)} or {(h // s + 1) * s}x{(w // s + 1) * s}"
            raise StaeError(f"{what} of shape {tuple(shape)}: H={h} and W={w} must be divisible by {s} "
                            f"(the encoder's stride, {cfg.depth} pooling block(s)); sizes that fit: {fit}")
        if cfg.memory == "fc" and (h, w) != tuple(cfg.fc_frame_size):
            raise StaeError(f"{what} of shape {tuple(shape)}: this fully-connected-memory model is built for "
                            f"{cfg.fc_frame_size[0]}x{cfg.fc_frame_size[1]} frames")

    def to_image(self, logits: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output as frames: sigmoid probabilities for ``output="sigmoid"``."""
        return torch.sigmoid(logits) if self.config.output == "sigmoid" else logits

    def head(self, x: torch.Tensor, m: Optional[torch.Tensor] = None, *, flow: Optional[torch.Tensor] = None,
             frame: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Theta, GG+S and D: features x_t (N, d, h, w) and memory output m_t (N, d_m, h, w) ->
        logits of the next frame (N, C, H, W) and the flow T_t (N, 2, h, w).

        ``flow`` given instead of ``m``: warp x_t by that flow and decode (a probe of what the
        decoder draws for a chosen flow); ``to_image`` turns the logits into frames.
        ``frame``: the input frame Y_t (N, C, H, W), needed by ``config.head = "image"``
        (heads.py), which warps it at full resolution."""
        if (m is None) == (flow is None):
            raise ValueError("head: give the memory output m or a flow, not both")
        if flow is None:
            flow = self.predict_flow(m)
        cfg = self.config
        decoded = self.decoder(warp(x, flow, cfg.warp_padding)) if self.decoder is not None else None
        if cfg.head == "features":
            return decoded, flow
        if frame is None:
            raise StaeError("head: config.head='image' warps the input frame; pass frame=Y_t")
        return image_prediction(frame, flow, decoded, cfg.stride, cfg.image_residual, cfg.image_mask,
                                cfg.warp_padding), flow

    def predict_flow(self, m: torch.Tensor) -> torch.Tensor:
        """Theta: the memory output m_t (N, d_m, h, w) -> the flow T_t (N, 2, h, w). With
        ``config.matching_skip`` m_t carries the observed flow in its last two channels (added by
        :meth:`_with_seen`) and Theta's output is a correction to it."""
        if not self.config.matching_skip:
            return self.flow(m)
        return self.flow(m[:, :-2]) + m[:, -2:]

    def _with_seen(self, m: torch.Tensor, inp: torch.Tensor, dim: int) -> torch.Tensor:
        """m_t with ``config.matching_skip``: the observed flow (channels d, d+1 of the memory
        input ``inp``, feature-grid pixels) appended along ``dim``, for :meth:`predict_flow`."""
        if not self.config.matching_skip:
            return m
        d = self.config.feature_channels
        return torch.cat([m, inp.narrow(dim, d, 2).to(m.dtype)], dim)

    # ---------------------------------------------------------------- running
    def step(self, frame: torch.Tensor, state: Optional[State] = None
             ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Stream one frame: Y_t (B, C, H, W), state -> (Y~_{t+1}, T_t (B, 2, h, w), new state).

        ``state=None`` starts from an empty memory (h = c = 0).
        """
        logits, flow, state = self._step(frame, state)
        return self.to_image(logits), flow, state

    def _step(self, frame: torch.Tensor, state: Optional[State]) -> tuple[torch.Tensor, torch.Tensor, State]:
        return self._advance(self._encode(frame), frame, state)

    def _encode(self, frame: torch.Tensor) -> torch.Tensor:
        """E of one checked frame Y_t (B, C, H, W): x_t (B, d, h, w)."""
        if frame.dim() != 4:
            raise StaeError(f"step expects a frame (B, C, H, W), got shape {tuple(frame.shape)}")
        self.check_frame_shape(tuple(frame.shape))
        return self.encoder(frame)

    def _advance(self, x: torch.Tensor, frame: Optional[torch.Tensor], state: Optional[State]
                 ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One step of the memory and the head from features x_t (B, d, h, w); ``frame`` Y_t is
        read only by block matching and the image head (None when fed back features)."""
        mem_state, last = self._split_state(state)
        # one step through memory.forward: its streaming fast path (the tiled kernel spectra)
        inp = self._memory_input(x[:, None], None if frame is None else frame[:, None], last)[:, 0]
        m, mem_state = self.memory(inp, mem_state)
        m = self._with_seen(m, inp, 1)
        logits, flow = self.head(x, m, frame=frame)  # (B, C, H, W), (B, 2, h, w)
        return logits, flow, self._join_state(mem_state, frame)

    def _feed_back(self, logits: torch.Tensor, flow: torch.Tensor, x: Optional[torch.Tensor], state: Optional[State],
                   truth: Optional[torch.Tensor] = None, keep: Optional[torch.Tensor] = None, detach: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], State]:
        """The next step of a rollout after the prediction ``logits`` (drawn from features ``x`` by
        ``flow``): its input is the prediction (``config.rollout_feedback="frames"``) or the warped
        features the decoder read ("features"); where ``keep`` (B,) is 1, the true frame ``truth``
        instead (scheduled sampling). ``detach``: no gradient through the fed-back input.
        Returns (logits, flow, the step's input features or None, state)."""
        if self.config.rollout_feedback == "frames":
            pred = self.to_image(logits)
            pred = pred.detach() if detach else pred
            if keep is not None and keep.any():  # none kept: the mix would be pred itself
                k = keep.to(pred.dtype).view(-1, *([1] * (pred.dim() - 1)))
                pred = k * truth + (1 - k) * pred
            lg, fl, state = self._step(pred, state)
            return lg, fl, None, state
        fed = warp(x, flow, self.config.warp_padding)
        fed = fed.detach() if detach else fed
        if keep is not None and keep.any():  # E of the true frames only when some are kept
            k = keep.to(fed.dtype).view(-1, 1, 1, 1)
            fed = k * self.encoder(truth) + (1 - k) * fed
        lg, fl, state = self._advance(fed, None, state)
        return lg, fl, fed, state

    # ------------------------------------------------------- the memory over time
    def _run_memory(self, xs: torch.Tensor, clip: torch.Tensor, state: Optional[State]
                    ) -> tuple[torch.Tensor, State]:
        """The memory over features xs (B, T, d, h, w) of ``clip`` (B, T, C, H, W) from ``state``:
        m (B, T, d_m, h, w) and the state after the last frame (with block matching, the memory
        also reads the motion observed between consecutive frames, and the state keeps the last;
        with ``matching_skip``, m also carries that motion: :meth:`predict_flow`)."""
        mem_state, last = self._split_state(state)
        inp = self._memory_input(xs, clip, last)
        ms, mem_state = self.memory.run(inp, mem_state)
        return self._with_seen(ms, inp, 2), self._join_state(mem_state, clip[:, -1])

    def _split_state(self, state: Optional[State]) -> tuple[Optional[State], Optional[LayerState]]:
        """(the memory layers' state, the block matching's (last frame, flag) or None)."""
        if state is None or self.matching is None:
            return state, None
        return state[:-1], state[-1]

    def _join_state(self, mem_state: State, last_frame: torch.Tensor) -> State:
        if self.matching is None:
            return mem_state
        return [*mem_state, (last_frame, last_frame.new_ones(last_frame.shape[0], 1, 1, 1))]

    def _memory_input(self, xs: torch.Tensor, clip: torch.Tensor, last: Optional[LayerState]) -> torch.Tensor:
        """x_t (B, T, d, h, w), with ``config.block_matching`` beside it the motion observed
        between each frame of ``clip`` (B, T, C, H, W) and its predecessor (matching.py); the
        first frame's predecessor is ``last`` (from the state), else the frame itself."""
        if self.matching is None:
            return xs
        b, t = clip.shape[:2]
        first = clip[:, :1]
        if last is not None:
            frame, real = last
            first = real[:, None] * frame[:, None] + (1 - real[:, None]) * first
        prevs = torch.cat([first, clip[:, :-1]], 1)
        seen = self.matching(prevs.flatten(0, 1), clip.flatten(0, 1)).unflatten(0, (b, t))
        return torch.cat([xs, seen.to(xs.dtype)], 2)

    def forward(self, clip: torch.Tensor, state: Optional[State] = None, first_output: int = 0) -> StaeOutput:
        """Every step of a clip (B, T, C, H, W) at once; equal to calling :meth:`step` T times.

        ``first_output``: outputs of steps ``first_output .. T-1`` only (B, T - first_output, ...),
        equal to ``forward(clip)[:, first_output:]``: the memory runs over every step, Theta,
        GG+S and D only where an output is wanted (a loss on the last prediction needs one).
        """
        return self.run(clip, state, first_output)[0]

    def run(self, clip: torch.Tensor, state: Optional[State] = None, first_output: int = 0
            ) -> tuple[StaeOutput, State]:
        """:meth:`forward` that also returns the memory state after the last frame.

        E, Theta, GG+S and D have no recurrence, so they run on all B*T frames in one batch;
        only the memory loops over time.
        """
        if clip.dim() != 5:
            raise StaeError(f"the model expects a clip (B, T, C, H, W), got shape {tuple(clip.shape)}")
        self.check_frame_shape(tuple(clip.shape), "clip")
        b, t = clip.shape[:2]
        if not 0 <= first_output < t:
            raise StaeError(f"first_output must be in [0, {t - 1}] for a clip of {t} frames, got {first_output}")
        if self.config.recompute_steps and torch.is_grad_enabled():
            return self._run_checkpointed(clip, state, first_output)
        xs = self.encoder(clip.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, d, h, w)
        ms, state = self._run_memory(xs, clip, state)  # (B, T, d_m, h, w)
        n = t - first_output  # the head only where an output is wanted
        logits, flow = self.head(xs[:, first_output:].flatten(0, 1), ms[:, first_output:].flatten(0, 1),
                                 frame=clip[:, first_output:].flatten(0, 1))
        logits = logits.unflatten(0, (b, n))  # (B, n, C, H, W); flow (B*n, 2, h, w)
        return StaeOutput(self.to_image(logits), flow.unflatten(0, (b, n)), logits), state

    def _run_checkpointed(self, clip: torch.Tensor, state: Optional[State], first_output: int = 0
                          ) -> tuple[StaeOutput, State]:
        """:meth:`run` with ``config.recompute_steps``: E, the memory step and the head run
        per time step under torch.utils.checkpoint, so the backward pass recomputes one step
        at a time and only the per-step inputs (frames, x_t, h, c) are kept in between."""
        def ckpt(fn, *args):
            return _checkpoint(fn, *args, use_reentrant=False)

        xs = torch.stack([ckpt(self.encoder, y) for y in clip.unbind(1)], 1)  # (B, T, d, h, w)
        ms, state = self._run_memory(xs, clip, state)  # the memory checkpoints each step itself
        heads = [ckpt(lambda x, m, y: self.head(x, m, frame=y), x, m, y)
                 for x, m, y in zip(xs.unbind(1)[first_output:], ms.unbind(1)[first_output:],
                                    clip.unbind(1)[first_output:])]
        logits = torch.stack([lg for lg, _ in heads], 1)  # (B, T, C, H, W)
        flows = torch.stack([f for _, f in heads], 1)  # (B, T, 2, h, w)
        return StaeOutput(self.to_image(logits), flows, logits), state

    @torch.no_grad()
    def rollout(self, clip: torch.Tensor, horizon: int) -> StaeOutput:
        """Observe ``clip`` (B, T, C, H, W), then predict ``horizon`` frames ahead, feeding each
        prediction back as the next input (``config.rollout_feedback``). Returns outputs for the
        ``horizon`` future frames."""
        if horizon < 1:
            raise StaeError(f"rollout horizon must be >= 1, got {horizon}")
        out, state = self.run(clip)
        return self._continue(out.logits[:, -1], out.flows[:, -1], self._last_features(clip), state, horizon)

    @torch.no_grad()
    def step_ahead(self, frame: torch.Tensor, state: Optional[State], horizon: int
                   ) -> tuple[StaeOutput, State]:
        """Stream one frame Y_t (B, C, H, W) like :meth:`step`, then predict ``horizon`` frames
        ahead from a copy of the state, as :meth:`rollout` does: the outputs for frames
        t+1 .. t+horizon and the state after Y_t (what the next observed frame continues from)."""
        if horizon < 1:
            raise StaeError(f"rollout horizon must be >= 1, got {horizon}")
        x = self._encode(frame)
        logits, flow, state = self._advance(x, frame, state)
        x = x if self.config.rollout_feedback == "features" else None
        return self._continue(logits, flow, x, state, horizon), state

    def _continue(self, logits: torch.Tensor, flow: torch.Tensor, x: Optional[torch.Tensor], state: State,
                  horizon: int) -> StaeOutput:
        """A rollout after its first prediction ``logits`` (drawn from ``x`` by ``flow``): that and
        ``horizon`` - 1 fed-back predictions."""
        logits_all, flows = [logits], [flow]
        for _ in range(horizon - 1):
            logits, flow, x, state = self._feed_back(logits, flow, x, state)
            logits_all.append(logits)
            flows.append(flow)
        lg = torch.stack(logits_all, 1)
        return StaeOutput(self.to_image(lg), torch.stack(flows, 1), lg)

    def _last_features(self, clip: torch.Tensor) -> Optional[torch.Tensor]:
        """E of the clip's last frame, what the first prediction was drawn from, when a rollout
        feeds back features (None otherwise: nothing to compute)."""
        return self.encoder(clip[:, -1]) if self.config.rollout_feedback == "features" else None

    def run_fed_back(self, context: torch.Tensor, future: torch.Tensor, feed_truth: torch.Tensor,
                     detach: bool = False) -> StaeOutput:
        """Rollout training (docs/training.md#rollout-training): observe ``context`` (B, tau, C, H, W),
        then take K - 1 more steps whose input is, per clip and step, the true frame ``future[:, j]``
        (``feed_truth[:, j]`` true, scheduled sampling) or what the model feeds back of its own
        previous prediction (``config.rollout_feedback``: the frame, or the features it was drawn
        from). ``future`` (B, K - 1, C, H, W) holds true frames tau .. tau + K - 2; ``feed_truth``
        (B, K - 1) bool. ``detach``: no gradient through the fed-back input. Gradients flow as in
        :meth:`forward`. Returns outputs for all tau + K - 1 steps (``frames[:, t]`` predicts
        frame t + 1); with K = 1 this is :meth:`forward` of ``context``."""
        if future.shape[1] != feed_truth.shape[1]:
            raise StaeError(f"run_fed_back: future has {future.shape[1]} frames but feed_truth "
                            f"{tuple(feed_truth.shape)} decides {feed_truth.shape[1]}")
        out, state = self.run(context)
        logits, flows = list(out.logits.unbind(1)), list(out.flows.unbind(1))
        x = self._last_features(context) if future.shape[1] else None
        for j in range(future.shape[1]):
            lg, flow, x, state = self._feed_back(logits[-1], flows[-1], x, state, future[:, j], feed_truth[:, j],
                                                 detach)
            logits.append(lg)
            flows.append(flow)
        lg = torch.stack(logits, 1)
        return StaeOutput(self.to_image(lg), torch.stack(flows, 1), lg)


def parameter_table(model: SpatioTemporalAutoencoder) -> dict[str, int]:
    """Trainable parameters per module of Fig. 1 (Table 1's rows) and the total."""
    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters() if p.requires_grad)
    rows = {"E": count(model.encoder), "D": count(model.decoder) if model.decoder is not None else 0,
            "memory": count(model.memory),
            "Theta": count(model.flow)}
    rows["total"] = sum(rows.values())
    return rows


def build_model(config: Union[str, ModelConfig, None] = None, **overrides) -> SpatioTemporalAutoencoder:
    """A model from a preset name (Table 2), a :class:`ModelConfig`, or the vanilla default."""
    if config is None:
        config = ModelConfig()
    elif isinstance(config, str):
        config = preset(config)
    if overrides:
        config = config.replace(**overrides)
    return SpatioTemporalAutoencoder(config)
