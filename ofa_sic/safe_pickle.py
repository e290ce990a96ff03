"""Reading data pickles without running code from them.

A pickle names functions and classes that `pickle.load` imports and calls, so a crafted file runs
any code (e.g. `os.system`) while it loads. `load_plain_pickle` admits only the builtin containers and
numbers plain data needs and `collections.defaultdict` (the CIDEr-D document-frequency pickles of OFA
and ruotianluo's `prepro_ngrams.py` hold exactly these); anything else stops the load with
`UnsafePickleError` naming what the file asked for, before it is called.
"""
import pickle

#: (module, name) pairs a plain-data pickle may refer to; "__builtin__" is Python 2's name of builtins.
ALLOWED_GLOBALS = frozenset(
    [(module, name) for module in ("builtins", "__builtin__") for name in ("dict", "tuple", "str", "int", "float")]
    + [("collections", "defaultdict")]
)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that refers to a function or class outside ALLOWED_GLOBALS."""


class PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"it refers to {module}.{name}, which a data file has no reason to hold (it could run code); "
                "only dict, tuple, str, int, float and collections.defaultdict are allowed"
            )
        return super().find_class(module, name)


def load_plain_pickle(handle, encoding: str = "ASCII"):
    """`pickle.load(handle, encoding=encoding)` restricted to ALLOWED_GLOBALS (raises UnsafePickleError)."""
    return PlainDataUnpickler(handle, encoding=encoding).load()
