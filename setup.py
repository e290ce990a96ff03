"""Install the ofa_sic fairseq plugin (`pip install -e .`; `make install` does it in a venv)."""
from setuptools import find_packages, setup

setup(
    name="ofa_sic",
    version="0.1.0",
    description="Stylized image captioning with OFA as a fairseq --user-dir plugin",
    python_requires=">=3.9",
    packages=find_packages(include=["ofa_sic", "ofa_sic.*", "criterions", "criterions.*"]),
    package_data={"ofa_sic.serve": ["page.html"]},
    # torch and fairseq are installed by the Makefile (CPU torch pin, fairseq with --no-deps).
    install_requires=["numpy", "Pillow", "pycocoevalcap", "tokenizers", "tqdm"],
    entry_points={"console_scripts": ["ofa-sic = ofa_sic.cli.main:main"]},
)
