"""SPICE through pycocoevalcap, only when its Stanford CoreNLP jars are already on disk.

pycocoevalcap's `Spice()` downloads Stanford CoreNLP 3.6.0 (about 400 MB) the first time it is
constructed. This module never lets that happen: it looks for the jars itself (without importing
`pycocoevalcap.spice.spice`) and runs SPICE only when they are all present. Otherwise callers get a
one-line reason that says how to install them.
"""
import importlib.util
import os
from typing import Dict, List, Optional

SPICE_JAR = "spice-1.0.jar"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
CORENLP_ZIP = "stanford-corenlp-full-2015-12-09.zip"


class SpiceUnavailable(RuntimeError):
    """SPICE cannot run here (jars missing, or SPICE itself failed); the message says why."""


def spice_dir() -> Optional[str]:
    """Folder of pycocoevalcap's SPICE (holding spice-1.0.jar and lib/), or None without pycocoevalcap."""
    try:
        spec = importlib.util.find_spec("pycocoevalcap.spice")
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def missing_spice_files(directory: Optional[str] = None) -> List[str]:
    """Paths SPICE needs that do not exist (empty when SPICE can run). Looks only; downloads nothing."""
    directory = directory or spice_dir()
    if directory is None:
        return ["pycocoevalcap (not installed)"]
    needed = [os.path.join(directory, SPICE_JAR)] + [os.path.join(directory, "lib", jar) for jar in CORENLP_JARS]
    return [path for path in needed if not os.path.isfile(path)]


def spice_skip_reason(directory: Optional[str] = None) -> Optional[str]:
    """None when SPICE's files are all present, else one line: what is missing and how to enable SPICE."""
    directory = directory or spice_dir()
    missing = missing_spice_files(directory)
    if not missing:
        return None
    if directory is None:
        return "SPICE skipped: pycocoevalcap is not installed (pip install pycocoevalcap)"
    names = ", ".join(os.path.basename(path) for path in missing)
    lib = os.path.join(directory, "lib")
    return (
        f"SPICE skipped: {names} not found under {directory}; to enable SPICE, run "
        f"`python -m pycocoevalcap.spice.get_stanford_models` once on a machine with network access, or copy "
        f"{' and '.join(CORENLP_JARS)} from Stanford's {CORENLP_ZIP} into {lib} (SPICE 1.0 runs on Java 8 or 11)"
    )


def spice_per_image(gts: Dict[str, List[str]], res: Dict[str, List[str]]) -> Dict[str, float]:
    """SPICE F-score (x100) of each id of tokenized `res` against `gts`; raises SpiceUnavailable.

    The corpus SPICE of any subset of ids is the mean of these values (pycocoevalcap averages them).
    """
    reason = spice_skip_reason()
    if reason:
        raise SpiceUnavailable(reason)
    import subprocess

    from pycocoevalcap.spice.spice import Spice  # its constructor only downloads when a jar is missing

    try:
        _, scores = Spice().compute_score(gts, res)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as error:
        raise SpiceUnavailable(
            f"SPICE failed ({error}); SPICE 1.0 runs on Java 8 or 11 (not 17 or later) and needs about 8 GB of memory"
        ) from None
    return {key: 100 * float(score["All"]["f"]) for key, score in zip(sorted(gts), scores)}
