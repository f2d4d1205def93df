"""Save and load models, trainers and estimators: one safe file, never a pickle.

File format (version 1)
-----------------------
One NumPy ``.npz`` archive (a zip of ``.npy`` members, written by ``np.savez``, stored
uncompressed) holding:

``__fastmlp__.json``
    A 1-D ``uint8`` array: the UTF-8 bytes of a JSON object (the header)::

        {"format": "fastmlp", "version": 1, "kind": "sequential" | "trainer" | <registered
         name>, "fastmlp_version": "0.1.0", "config": {...}}

``params``, ``buffers``
    The model's parameter arena and buffer arena (running statistics), 1-D, of the model's
    dtype (kinds "sequential" and "trainer").
``optimizer.<slot>``
    Each optimizer state buffer (``exp_avg``, ``momentum_buffer``, ...) (kind "trainer").

``config`` of a **sequential**: ``layers`` (a list of ``{"type": layer class name,
"config": constructor arguments}``; a Dense layer's activation, regularizer and constraint
are nested configs of the same form, its ``tied_to`` the index of the tied layer in the
model's ``flat_layers``; Residual has ``{"layers": [...]}``), ``dtype``, ``seed``,
``rng_seed`` and ``rng_step`` (the dropout/noise RNG key and counter), ``backend``,
``n_params`` and ``n_buffers``.

``config`` of a **trainer**: ``model`` (as above), ``loss``, ``regularizers`` (configs),
``optimizer`` (``{"type", "step", "hyper", "state": [slot names]}``), ``metrics`` (a list
of ``{"name", "builtin"}``; ``builtin`` null for user functions, which ``load`` takes back
through ``custom_objects``), ``seed``, ``rng`` (the ``bit_generator.state`` of the trainer's
shuffling generator) and ``stop_training``. Loading it and fitting on continues exactly as
the uninterrupted run would have (same batches, dropout masks and optimizer steps).

Any other **kind** is the registered name of a class implementing ``__fastmlp_save__(self)
-> (config, arrays)`` and the classmethod ``__fastmlp_load__(cls, config, arrays)``; its
arrays are stored under their own names. Sequential and Trainer implement the same protocol
(their ``__fastmlp_load__`` also takes ``custom_objects``); this module knows them only by
their kinds (``fastmlp._serial.register_kind``), not by import.

Writing is atomic: the file is written to a temporary file in the same directory, flushed
and fsynced, then renamed over ``path`` (and the directory fsynced); a crash mid-save leaves
the previous file intact (and possibly a stray ``.<name>.<random>.tmp``).

Reading is safe on untrusted files: arrays are loaded with ``allow_pickle=False`` after
every member's header was checked (plain numeric or string dtypes only, sizes that the file
actually holds), types are looked up in a registry (:func:`register`) rather than imported,
and sizes declared by the architecture are checked against the arrays before the model is
allocated. A file that is not a valid fastmlp file raises ValueError.
"""
import contextlib
import json
import os
import re
import secrets
import zipfile
from typing import Any, Dict, Optional, Tuple

import numpy as np

from fastmlp._serial import (KINDS, check_keys, jsonable, kind_of, register, registered,
                             registered_name)
from fastmlp._typing import Config, PathLike
from fastmlp._version import __version__
from fastmlp.interop import from_torch_state_dict, to_torch_state_dict  # noqa: F401 (API)

__all__ = ["save", "load", "pack", "unpack", "register", "to_torch_state_dict",
           "from_torch_state_dict"]

FORMAT, VERSION = "fastmlp", 1
HEADER = "__fastmlp__.json"
MAX_HEADER_BYTES = 64 * 2**20
MAX_MEMBERS = 4096
#: modules of this package that register estimator kinds, imported when a kind is unknown
PROVIDERS = ("fastmlp.estimators",)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")
_RESERVED_ARRAYS = {HEADER, "file", "allow_pickle", "args", "kwds"}
_DTYPE_KINDS = "biufcSU"


# --- public API -----------------------------------------------------------------------------

def save(obj: Any, path: PathLike) -> None:
    """Save a Sequential, a Trainer or an object implementing ``__fastmlp_save__`` to
    ``path`` (one ``.npz`` file; see the module docstring), atomically. A Trainer of a
    distributed fit (``comm=``) is written by rank 0 only.

    Parameters
    ----------
    obj : Sequential, Trainer or registered object
    path : str or os.PathLike
        Written as given (no extension is added).

    Examples
    --------
    >>> fm.save(model, "model.fmlp")          # doctest: +SKIP
    >>> model = fm.load("model.fmlp")         # doctest: +SKIP
    """
    if getattr(obj, "rank", 0) != 0:      # a distributed Trainer: rank 0 writes
        return
    header, arrays = pack(obj)
    blob = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    entries = {HEADER: np.frombuffer(blob, dtype=np.uint8)}
    entries.update(arrays)
    _write_atomic(os.fspath(path), entries)


def load(path: PathLike, custom_objects: Optional[Dict[str, Any]] = None) -> Any:
    """Load what :func:`save` wrote.

    Parameters
    ----------
    path : str or os.PathLike
    custom_objects : dict, optional
        ``{name: class or function}`` for user-defined layers, losses, penalties and
        custom metric functions (found by name before the registry).

    Returns
    -------
    Sequential, Trainer or the registered object

    Raises
    ------
    ValueError
        The file is not a valid fastmlp file (truncated, corrupt, hostile, unknown types,
        arrays that do not fit the architecture, ...). Opening a missing file raises
        FileNotFoundError as usual.
    """
    path = os.fspath(path)
    header, arrays = _read(path)
    try:
        return unpack(header, arrays, custom_objects)
    except ValueError as exc:
        raise ValueError(f"{path!r}: {exc}") from None
    except RecursionError:
        raise ValueError(f"{path!r}: the config is nested too deeply") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise ValueError(f"{path!r}: invalid fastmlp file: {type(exc).__name__}: "
                         f"{exc}") from None


def pack(obj: Any) -> Tuple[Config, Dict[str, np.ndarray]]:
    """``(header, arrays)`` of ``obj`` as :func:`save` writes them (no file involved).
    Arrays may be views of the object's live state: copy them to keep a snapshot."""
    kind = kind_of(obj)
    if kind is not None:                  # a Sequential or a Trainer
        config, arrays = obj.__fastmlp_save__()
    elif callable(getattr(obj, "__fastmlp_save__", None)):
        config, arrays = obj.__fastmlp_save__()      # first: it may refuse with its reason
        kind = registered_name(type(obj))
        if not isinstance(config, dict) or not isinstance(arrays, dict):
            raise TypeError(f"{type(obj).__name__}.__fastmlp_save__ must return (dict, dict)")
        config = jsonable(config, f"{type(obj).__name__} config")
    else:
        raise TypeError(f"cannot save a {type(obj).__name__}: save takes a Sequential, a "
                        "Trainer or an object implementing __fastmlp_save__")
    for name, a in arrays.items():
        if not (isinstance(name, str) and _NAME.match(name)) or name in _RESERVED_ARRAYS:
            raise ValueError(f"invalid array name {name!r}")
        if not isinstance(a, np.ndarray) or a.dtype.kind not in _DTYPE_KINDS \
                or a.dtype.fields is not None:
            raise TypeError(f"array {name!r} must be a numeric or string ndarray, got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
    header = {"format": FORMAT, "version": VERSION, "kind": kind,
              "fastmlp_version": __version__, "config": config}
    return header, arrays


def unpack(header: Config, arrays: Dict[str, np.ndarray],
           custom_objects: Optional[Dict[str, Any]] = None) -> Any:
    """Rebuild the object from ``(header, arrays)`` (the inverse of :func:`pack`)."""
    check_keys(header, ("format", "version", "kind", "config"), ("fastmlp_version",),
               "the header")
    if header["format"] != FORMAT:
        raise ValueError(f"not a fastmlp file (format {header['format']!r:.40})")
    if header["version"] != VERSION or isinstance(header["version"], bool):
        raise ValueError(f"unsupported fastmlp file version {header['version']!r:.40} "
                         f"(this fastmlp reads version {VERSION})")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError("custom_objects must be a dict {name: object}")
    kind, config = header["kind"], header["config"]
    arrays = dict(arrays)
    if isinstance(kind, str) and kind in KINDS:      # "sequential", "trainer"
        out = KINDS[kind].__fastmlp_load__(config, arrays, custom_objects)
    else:
        cls = _estimator_class(kind, custom_objects)
        return cls.__fastmlp_load__(config, arrays)
    if arrays:
        raise ValueError(f"unexpected arrays in the file: {sorted(arrays)[:10]}")
    return out


def _estimator_class(kind, custom_objects):
    if not isinstance(kind, str):
        raise ValueError("the file's kind must be a string")
    cls = registered(kind, custom_objects)
    if cls is None:
        for module in PROVIDERS:        # our own modules only, never a name from the file
            with contextlib.suppress(ImportError):
                __import__(module)
        cls = registered(kind)
    if not (isinstance(cls, type) and callable(getattr(cls, "__fastmlp_load__", None))):
        raise ValueError(f"unknown kind of saved object {kind[:100]!r}")
    return cls


# --- the file ---------------------------------------------------------------------------------

def _write_atomic(path, entries):
    """np.savez to a temporary file next to ``path``, fsync, rename over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except FileNotFoundError:
        raise FileNotFoundError(f"cannot save to {path!r}: the directory {directory!r} does "
                                "not exist") from None
    try:
        with open(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:                     # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(path):
    """``(header dict, {name: array})`` of a fastmlp file; ValueError if it is not one."""
    with open(path, "rb") as f:
        try:
            return _read_file(f, os.fstat(f.fileno()).st_size)
        except ValueError as exc:
            raise ValueError(f"{path!r} is not a valid fastmlp file: {exc}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, KeyError,
                IndexError, TypeError, OverflowError, NotImplementedError, RuntimeError,
                UnicodeDecodeError, SyntaxError, MemoryError) as exc:
            raise ValueError(f"{path!r} is not a valid fastmlp file (corrupt or truncated): "
                             f"{type(exc).__name__}: {exc}") from None


def _read_file(f, size):
    if size == 0:
        raise ValueError("the file is empty")
    if f.read(4) != b"PK\x03\x04":
        raise ValueError("not an .npz (zip) archive")
    f.seek(0)
    _check_members(f, size)
    f.seek(0)
    with np.load(f, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    blob = arrays.pop(HEADER, None)
    if blob is None:
        raise ValueError(f"the {HEADER} entry is missing")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ValueError(f"the {HEADER} entry must be a 1-D uint8 array")
    if blob.shape[0] > MAX_HEADER_BYTES:
        raise ValueError(f"the {HEADER} entry is larger than {MAX_HEADER_BYTES} bytes")
    header = json.loads(blob.tobytes().decode("utf-8"), parse_constant=_no_constant,
                        object_pairs_hook=_no_duplicates)
    if not isinstance(header, dict):
        raise ValueError(f"the header must be a JSON object, got {type(header).__name__}")
    return header, arrays


def _check_members(f, size):
    """Every member is a plain ``.npy`` of a simple dtype whose data the file really holds,
    so that loading it allocates at most the file's size."""
    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"too many entries ({len(infos)})")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise ValueError("duplicate entries")
        for info in infos:
            _check_member(zf, info, size)


def _check_member(zf, info, size):
    name = info.filename
    if not (name.endswith(".npy") and _NAME.match(name[:-4])):
        raise ValueError(f"unexpected entry {name[:100]!r}")
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise ValueError(f"entry {name!r} is compressed or encrypted")
    if info.file_size > size or info.compress_size != info.file_size:
        raise ValueError(f"entry {name!r} declares more bytes than the file holds")
    with zf.open(info) as m:
        version = np.lib.format.read_magic(m)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(m)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(m)
        else:
            raise ValueError(f"entry {name!r}: unsupported .npy version {version}")
        data_bytes = info.file_size - m.tell()
    if dtype.kind not in _DTYPE_KINDS or dtype.fields is not None or dtype.shape != () \
            or dtype.itemsize == 0:
        raise ValueError(f"entry {name!r} has the unsupported dtype {dtype}")
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != data_bytes:
        raise ValueError(f"entry {name!r} declares shape {shape} of {dtype} but holds "
                         f"{data_bytes} bytes")


def _no_constant(name):
    raise ValueError(f"the header holds {name}, which is not valid JSON")


def _no_duplicates(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("the header has duplicate keys")
    return out
