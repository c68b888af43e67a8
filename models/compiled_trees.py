"""LightGBM trees compiled to native code by lleaves (LLVM), for the request path.

ONNX stays the portable artifact, and what this is parity-tested against; compiled trees
score the same rows several times faster (docs/api.md, "Performance"). Compiling takes a
few seconds, so the object code is kept under a cache directory, named by the model's
digest, the CPU it was built for and the compiler's version: other workers, restarts and
reloads of the same version load it in milliseconds. One process compiles at a time (a
file lock), and a cache file appears only once complete (written aside, checked whole,
then renamed); one that is not (cut short by a full disk, whose error lleaves swallows,
or damaged since) is compiled again, since LLVM aborts the process on loading it.

`predict` calls the compiled forest itself, with the rows' and the predictions' addresses:
lleaves' own `predict` converts its input and makes two ctypes pointers per call, about
3 us of a call that scores a lone user's dozen rows in 4. The forest's address is lleaves'
`_c_entry_func`, not a public name, so tests/models/test_tree_scoring.py checks both calls
give the same numbers with the lleaves installed.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import struct
import tempfile
from pathlib import Path

import lleaves
import llvmlite
import llvmlite.binding as llvm
import numpy as np

# the compiled forest's entry: rows (n x features, float64), predictions (n), first and
# end row; it releases the interpreter lock while it runs, as lleaves' own call does
_FOREST = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32,
                           ctypes.c_int32)


def _cache_name(model_text: bytes, raw_score: bool) -> str:
    """The model's digest, the host CPU (its name is often just "generic" in a VM: its
    features tell CPUs apart), the compiler's version and whether it gives raw scores."""
    model = hashlib.sha256(model_text).hexdigest()[:32]
    cpu = hashlib.sha256(llvm.get_host_cpu_features().flatten().encode()).hexdigest()[:12]
    raw = "-raw" if raw_score else ""
    return f"{model}-{llvm.get_host_cpu_name()}-{cpu}-llvmlite{llvmlite.__version__}{raw}"


class CompiledTrees:
    """A LightGBM model's predictions (probabilities for a binary classifier, the raw
    score for a ranker, or the trees' summed score for either with `raw_score`), computed
    in float64 on the calling thread."""

    def __init__(self, model_text: bytes, cache_dir: Path, raw_score: bool = False) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        name = _cache_name(model_text, raw_score)
        source, compiled = cache_dir / f"{name}.txt", cache_dir / f"{name}.o"
        with open(cache_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not source.is_file():
                _write_aside(source, model_text)
            self._model = lleaves.Model(model_file=str(source))
            if self._model.num_model_per_iteration() != 1:  # predict writes a number a row
                raise ValueError(f"{source}: a multiclass model, not a binary one or a ranker")
            if compiled.is_file() and not _whole_object(compiled):
                compiled.unlink()
            if compiled.is_file():
                self._model.compile(cache=str(compiled), raw_score=raw_score)
            else:
                scratch = Path(tempfile.mkdtemp(dir=cache_dir)) / compiled.name
                try:
                    self._model.compile(cache=str(scratch), raw_score=raw_score)
                    if not _whole_object(scratch):
                        raise OSError(f"{compiled}: the compiled object was not written "
                                      "whole (is the disk full?)")
                    os.replace(scratch, compiled)
                finally:
                    scratch.unlink(missing_ok=True)
                    scratch.parent.rmdir()
        forest = getattr(self._model, "_c_entry_func", None)
        entry = None if forest is None else ctypes.cast(forest, ctypes.c_void_p).value
        if not entry:  # another lleaves: tree_scoring falls back to the ONNX graph
            raise RuntimeError(f"lleaves gave no forest entry for {source}")
        self._forest = _FOREST(entry)

    @property
    def features(self) -> int:
        return int(self._model.num_feature())

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.features:
            raise ValueError(f"rows must be (n, {self.features}), got {rows.shape}")
        predictions = np.zeros(len(rows))
        self._forest(rows.ctypes.data, predictions.ctypes.data, 0, len(rows))
        return predictions


def _whole_object(path: Path) -> bool:
    """Whether `path` holds an ELF object file whose section headers, which come last, are
    all in it: the object code lleaves writes, not cut short."""
    with open(path, "rb") as file:
        header = file.read(64)
        size = os.fstat(file.fileno()).st_size
    if len(header) < 52 or header[:4] != b"\x7fELF" or header[4] not in (1, 2):
        return False
    order = "<" if header[5] == 1 else ">"
    wide = header[4] == 2  # 64-bit: e_shoff at 0x28, e_shentsize and e_shnum at 0x3a
    if wide and len(header) < 64:
        return False
    offset: int = struct.unpack_from(order + ("Q" if wide else "I"), header,
                                     0x28 if wide else 0x20)[0]
    entry, count = struct.unpack_from(order + "HH", header, 0x3A if wide else 0x2E)
    return bool(count > 0 and offset + entry * count <= size)


def _write_aside(path: Path, content: bytes) -> None:
    scratch = path.with_suffix(".partial")
    scratch.write_bytes(content)
    os.replace(scratch, path)
