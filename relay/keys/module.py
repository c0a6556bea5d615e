"""Loading a PKCS#11 module so that several threads may call it at once.

python-pkcs11 initialises a module with C_Initialize(NULL), which by the
standard (PKCS#11 v2.40 §5.4) promises the module that no two threads will
call it concurrently; SoftHSM2 then disables its own locks and crashes under
concurrent signing. So right after python-pkcs11 initialises a module we
initialise it again with CKF_OS_LOCKING_OK. A module that answers
CKR_CANT_LOCK is kept as python-pkcs11 left it and every call to it is
serialised by a process-wide lock instead.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from typing import Any

import pkcs11
from pkcs11 import exceptions as p11

from .errors import KeyErrorCode, KeyStoreError

CKR_OK = 0x0
CKR_CANT_LOCK = 0x0A
CKF_OS_LOCKING_OK = 0x2


@dataclass(frozen=True, eq=False)
class Module:
    lib: Any  # pkcs11.lib
    serial: threading.Lock | None  # set when the module cannot lock itself: callers take it around each call


class _InitArgs(ctypes.Structure):
    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    ]


_RV_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)
_lock = threading.Lock()
_modules: dict[str, Module] = {}


def load_module(path: str) -> Module:
    """The module at path, initialised for multi-threaded use (once per process)."""
    if not os.path.isfile(path):
        raise KeyStoreError(KeyErrorCode.MODULE_NOT_FOUND, f"no PKCS#11 module at {path}")
    with _lock:
        known = _modules.get(path)
        if known is not None and known.lib.initialized and _alive(known.lib):
            return known
        try:
            lib = pkcs11.lib(path)  # C_Initialize(NULL) when not (or no longer) initialised
        except p11.PKCS11Error as error:
            raise KeyStoreError(KeyErrorCode.MODULE_NOT_FOUND, f"cannot load PKCS#11 module {path}: {error}") from None
        module = _modules[path] = Module(lib, None if _reinitialise_with_locking(path) else threading.Lock())
        return module


def _alive(lib: Any) -> bool:
    """False when the module was finalised behind python-pkcs11's back."""
    try:
        lib.get_slots()
        return True
    except p11.PKCS11Error:
        return False


def _reinitialise_with_locking(path: str) -> bool:
    """C_Finalize then C_Initialize(CKF_OS_LOCKING_OK); True if the module accepted it."""
    functions = _function_list(path)
    initialize, finalize = _RV_FUNCTION(functions[1]), _RV_FUNCTION(functions[2])
    finalize(None)
    args = _InitArgs(None, None, None, None, CKF_OS_LOCKING_OK, None)
    rv = initialize(ctypes.cast(ctypes.byref(args), ctypes.c_void_p))
    if rv == CKR_OK:
        return True
    if rv != CKR_CANT_LOCK:
        raise KeyStoreError(KeyErrorCode.MODULE_NOT_FOUND, f"PKCS#11 module {path}: C_Initialize returned {rv:#x}")
    if initialize(None) != CKR_OK:
        raise KeyStoreError(KeyErrorCode.MODULE_NOT_FOUND, f"PKCS#11 module {path} cannot be initialised")
    return False


def _function_list(path: str) -> Any:
    # dlopen of an already loaded library returns the same instance python-pkcs11 uses.
    library = ctypes.CDLL(path)
    pointer = ctypes.c_void_p()
    get_function_list = library.C_GetFunctionList
    get_function_list.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    get_function_list.restype = ctypes.c_ulong
    if get_function_list(ctypes.byref(pointer)) != CKR_OK or not pointer.value:
        raise KeyStoreError(KeyErrorCode.MODULE_NOT_FOUND, f"PKCS#11 module {path} has no function list")
    # CK_FUNCTION_LIST: a CK_VERSION (padded to one pointer), then C_Initialize, C_Finalize, ...
    return ctypes.cast(pointer, ctypes.POINTER(ctypes.c_void_p))
