"""Packaging for transformers-codellama: Meta's Code Llama, exactly, in Hugging Face transformers."""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent

setup(
    name="transformers-codellama",
    version="0.1.0",
    description=(
        "Code Llama for Hugging Face transformers v5: exact SentencePiece and fast tokenizers with infilling, "
        "Auto-class registration, pipelines for completion/infilling/chat, and a streaming converter "
        "from Meta's checkpoints."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The converter lives in the top-level `conversion/` folder and installs as a subpackage.
    packages=["transformers_codellama", "transformers_codellama.conversion"],
    package_dir={"transformers_codellama.conversion": "conversion"},
    package_data={"transformers_codellama": ["data/*.model", "data/*.safetensors", "py.typed"]},
    install_requires=[
        "transformers>=5.5.0,<6",
        "tokenizers>=0.22",
        "sentencepiece>=0.2.0",
        "protobuf>=4",
        "torch>=2.4",
        "safetensors>=0.4.3",
        "accelerate>=1.0",
        "huggingface_hub>=1.0",
        "psutil>=5.9",
    ],
    extras_require={
        # Fine-tuning with FIM examples: datasets map functions and LoRA adapters.
        "train": ["peft>=0.13", "datasets>=3.0"],
        "test": [
            "peft>=0.13",
            "datasets>=3.0",
            "pytest>=8",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "mypy>=1.10",
            "mkdocs>=1.6",
            "mkdocstrings[python]>=0.26",
        ],
    },
    entry_points={
        "console_scripts": [
            "codellama-convert=transformers_codellama.conversion.convert_codellama_weights_to_hf:main",
            "codellama-demo=transformers_codellama.demo:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
