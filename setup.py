from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec((Path(__file__).parent / "vsrt" / "__init__.py").read_text(), version)

setup(
    name="vsrt",
    version=version["__version__"],
    description="Transformer video super-resolution (MIA-VSR, PSRT-recurrent, VRT, SAVSR) in the BasicSR style",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["vsrt", "vsrt.*"]),
    package_data={"vsrt.data": ["meta_info/*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1", "torchvision>=0.16", "numpy", "opencv-python-headless", "pyyaml", "einops",
        "scipy", "lmdb", "tqdm", "av>=14",
    ],
    extras_require={"tb": ["tensorboard"], "test": ["pytest"],
                    "export": ["onnx", "onnxscript", "onnxruntime"]},  # python -m vsrt export, --backend onnxruntime
    entry_points={"console_scripts": ["vsrt=vsrt.__main__:main"]},
    license="Apache-2.0",
)
