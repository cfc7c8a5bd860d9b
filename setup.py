"""Packaging for transformers-codellama: Meta's Code Llama, exactly, in Hugging Face transformers."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
SERVE = ["fastapi>=0.110", "uvicorn>=0.29", "pydantic>=2.6", "prometheus-client>=0.20"]
TRAIN = ["peft>=0.13", "datasets>=3.0"]
RAY = ["ray[serve]>=2.60"]  # serve.ingress() with __serve_build_asgi_app__, request routers with handle args

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
    packages=find_packages(include=["transformers_codellama", "transformers_codellama.*"]),
    # A script, not an entry point: it starts before the package registers itself (and imports torch).
    scripts=["conversion/codellama-convert"],
    package_data={
        "transformers_codellama": ["data/*.model", "data/*.safetensors", "py.typed"],
        "transformers_codellama.serving.http": ["static/*.html"],  # the playground page
    },
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
        # `codellama-serve`: the HTTP server for editors (OpenAI, Mistral FIM, llama.cpp, TGI and Ollama APIs).
        "serve": SERVE,
        # Fine-tuning with FIM examples: datasets map functions and LoRA adapters.
        "train": TRAIN,
        # `codellama-serve --ray`: the same server as a Ray Serve application (docs/serving_ray.md).
        "ray": [*SERVE, *RAY],
        "test": [
            *SERVE,
            *TRAIN,
            *RAY,
            "openai>=1.0",
            "ollama>=0.6",  # the Ollama adapter's tests and docs examples
            "mistralai>=1.0",  # /v1/fim/completions through client.fim
            "httpx>=0.27",
            "pytest>=8",
            "hypothesis>=6.100",
            "schemathesis>=4.0",  # fuzzes the served OpenAPI schema
            "selenium>=4.20",  # drives headless Chromium through the playground
            "ruff>=0.6",
            "mypy>=1.10",
            "import-linter>=2.1",  # the layering contracts in pyproject.toml
            "mkdocs>=1.6",
            "mkdocstrings[python]>=0.26",
            "matplotlib>=3.8",  # benchmarks/bench_engine_speed.py's plot
        ],
    },
    entry_points={
        "console_scripts": [
            "codellama-demo=transformers_codellama.demo:main",
            "codellama-serve=transformers_codellama.serving.cli:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
