"""Data: MNIST digit sources, the Moving MNIST generator (with exact masks and flow), real
textures in motion (photographs, exact flow and occlusion), clip files (``mnist_test_seq.npy``
and our ``.npz``), real videos and random crops of them. See docs/data.md.

Every dataset item is a dict with "clip": float32 (T, C, H, W) in [0, 1]; the generators add
"masks" bool (T, K, H, W) and "flow" float32 (T-1, 2, H, W) (backward, pixels) on request
(textures also "occlusion" bool (T-1, H, W)).
"""

from stae.data.digits import load_digit_labels, load_digits, load_labeled_digits
from stae.data.files import ClipFileDataset, load_clip_file, read_meta, save_moving_mnist
from stae.data.moving_mnist import (
    DEFAULT_SEEDS,
    DEFAULT_SIZES,
    MovingMNIST,
    default_dataset,
    flow_from_owner,
    generate,
    masks_from_owner,
)
from stae.data.mixture import Mixture
from stae.data.textures import MovingTextures
from stae.data.textures_file import TexturesFileDataset, save_textures
from stae.data.video import VideoClipDataset, find_videos, iter_frames, probe, read_frames
from stae.data.video_crops import VideoCrops

__all__ = [
    "DEFAULT_SEEDS",
    "DEFAULT_SIZES",
    "ClipFileDataset",
    "Mixture",
    "MovingMNIST",
    "MovingTextures",
    "TexturesFileDataset",
    "VideoClipDataset",
    "VideoCrops",
    "default_dataset",
    "find_videos",
    "flow_from_owner",
    "generate",
    "iter_frames",
    "load_clip_file",
    "load_digit_labels",
    "load_digits",
    "load_labeled_digits",
    "masks_from_owner",
    "probe",
    "read_frames",
    "read_meta",
    "save_moving_mnist",
    "save_textures",
]
