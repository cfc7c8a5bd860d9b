"""The `text-generation` pipeline for Code Llama: completion, fill-in-the-middle with `<FILL_ME>`, and chat.

`pipeline("text-generation", model=...)` builds `CodeLlamaTextGenerationPipeline` for Code Llama checkpoints and the
stock `TextGenerationPipeline` (the very class, untouched) for every other model: `register_pipeline()` points the
task at this subclass, whose `__new__` hands anything that is not Code Llama back to the stock class.

Each prompt is decoded the way Meta's `llama/generation.py` decodes it, cut at the first stop token:

* completion (`[BOS] + encode(prompt)`): stops on `</s>`; `return_full_text=False` gives Meta's `generation`;
* infilling (a prompt holding `<FILL_ME>`, Meta's layout, `suffix_first=True` for the SPM one): stops on `▁<EOT>`
  (or `</s>`); the middle is decoded as Meta decodes it, and the default full text is `prefix + middle + suffix`;
* chat (a list of messages): the tokenizer's chat template (Meta's ids); stops on `</s>` (and `<step>` on 70B).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from transformers import TextGenerationPipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.text_generation import ReturnType
from transformers.utils.chat_template_utils import Chat

from .configuration_code_llama import CodeLlamaConfig
from .infilling import FILL_TOKEN, cannot_infill, split_fill_marker
from .stopping import CHAT, COMPLETE, INFILL, stop_ids, until_stop


class _AskedPrompt(NamedTuple):
    """What `postprocess` knows of a prompt: as the caller gave it (text or chat) and as ids."""

    text: Any
    ids: list[int]


# The key under which a prompt's mode travels from `preprocess` through `_forward` to `postprocess`.
_MODE = "codellama_mode"


def is_code_llama(model: Any, tokenizer: Any) -> bool:
    """Whether a pipeline over `model`/`tokenizer` is Code Llama's: a `codellama` model or one of our tokenizers."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    # Our tokenizers (also when loaded as remote code) are the ones that decode infilled middles.
    return model_type == CodeLlamaConfig.model_type or callable(getattr(tokenizer, "decode_infill", None))


class CodeLlamaTextGenerationPipeline(TextGenerationPipeline):
    """`TextGenerationPipeline` for Code Llama: completion, infilling (`<FILL_ME>`) and chat, decoded as Meta does.

    Built by `pipeline("text-generation", model=...)` for Code Llama checkpoints; for any other model that call
    returns the stock `TextGenerationPipeline`. Extra call argument: `suffix_first` (bool) selects Meta's
    suffix-prefix-middle infilling layout. Batching (`batch_size`) pads on the left with `</s>`, which the pipeline
    sets as the tokenizer's pad token when it has none (Code Llama has no pad token).

    Example:

    ```python
    >>> generator = pipeline("text-generation", model=checkpoint)  # doctest: +SKIP
    >>> generator("def add(a, b):\\n    <FILL_ME>\\n", return_full_text=False, do_sample=False)  # doctest: +SKIP
    ```
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        model = kwargs.get("model", args[0] if args else None)
        if cls is CodeLlamaTextGenerationPipeline and not is_code_llama(model, kwargs.get("tokenizer")):
            # Every other model gets the stock pipeline itself, so its type and behaviour are exactly upstream's.
            return TextGenerationPipeline(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Code Llama has no pad token; batched prompts are left-padded with </s> (masked out, never generated).
        if self.tokenizer is not None and self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def _code_llama_tokenizer(self) -> Any:
        # Typed loosely: the stock attribute is `PreTrainedTokenizer | None`, ours is always a Code Llama tokenizer.
        return self.tokenizer

    def check_model_type(self, supported_models: Any) -> None:
        """Accept Code Llama models (registered, so absent from the built-in names the stock check reads)."""
        if getattr(self.model.config, "model_type", None) != CodeLlamaConfig.model_type:
            super().check_model_type(supported_models)

    # The override ignores below: TextGenerationPipeline's own signatures already differ from its base
    # `Pipeline`'s, so no override can match both supertypes.
    def _sanitize_parameters(self, suffix_first: bool | None = None, **kwargs: Any) -> tuple[dict, dict, dict]:  # type: ignore[override]
        # `suffix_first` is a tokenizer argument of the infilling layout, not a `generate` one.
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        if suffix_first is not None:
            preprocess_params["suffix_first"] = suffix_first
        return preprocess_params, forward_params, postprocess_params

    def __call__(self, text_inputs: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Complete, infill or chat; infilling prompts are checked before anything is generated."""
        prompts = [text_inputs] if isinstance(text_inputs, str) else text_inputs
        if isinstance(prompts, (list, tuple)) and all(isinstance(prompt, str) for prompt in prompts):
            modes = {self._mode_of(prompt) for prompt in prompts}
            batch_size = kwargs.get("batch_size") or self._batch_size or 1
            if len(modes) > 1 and batch_size > 1:
                raise ValueError(
                    "infilling and completion prompts stop on different tokens and cannot share a batch; "
                    "pass them in separate calls or with batch_size=1"
                )
        return super().__call__(text_inputs, **kwargs)

    def _mode_of(self, prompt: Any) -> str:
        if isinstance(prompt, Chat):
            return CHAT
        if split_fill_marker(prompt, getattr(self.tokenizer, "fill_token", FILL_TOKEN)) is None:
            return COMPLETE
        self._check_can_infill()
        return INFILL

    def _check_can_infill(self) -> None:
        reason = cannot_infill(self.model.config, self.tokenizer)
        if reason is not None:
            name = getattr(self.model.config, "_name_or_path", "") or "this model"
            raise ValueError(f"{name} cannot fill in the middle ({reason}); remove {FILL_TOKEN}")

    def preprocess(self, prompt_text: Any, prefix: str = "", suffix_first: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        """Tokenize as the stock pipeline does (our tokenizer lays `<FILL_ME>` prompts out), recording the mode."""
        mode = self._mode_of(prefix + prompt_text if isinstance(prompt_text, str) else prompt_text)
        if mode == INFILL:
            kwargs["tokenizer_encode_kwargs"] = {
                **(kwargs.get("tokenizer_encode_kwargs") or {}),
                "suffix_first": suffix_first,
            }
        inputs = super().preprocess(prompt_text, prefix=prefix, **kwargs)
        inputs[_MODE] = mode
        return inputs

    def _stop_ids(self, mode: str) -> list[int]:
        return stop_ids(self._code_llama_tokenizer, mode)

    def _forward(self, model_inputs: dict, **generate_kwargs: Any) -> Any:  # type: ignore[override]
        modes = model_inputs.pop(_MODE)
        batch_modes = modes if isinstance(modes, list) else [modes]
        user_set = {**getattr(self, "_generate_kwargs", {}), **generate_kwargs}
        if "eos_token_id" not in user_set and "generation_config" not in user_set:
            generate_kwargs["eos_token_id"] = self._stop_ids(batch_modes[0])
        if "pad_token_id" not in user_set and "generation_config" not in user_set:
            generate_kwargs["pad_token_id"] = self._code_llama_tokenizer.pad_token_id
        outputs = super()._forward(model_inputs, **generate_kwargs)
        outputs[_MODE] = modes
        return outputs

    def postprocess(  # type: ignore[override]
        self,
        model_outputs: dict,
        return_type: ReturnType = ReturnType.FULL_TEXT,
        clean_up_tokenization_spaces: bool | None = None,
        skip_special_tokens: bool | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Decode each generated sequence up to its mode's first stop token, as Meta does."""
        mode = model_outputs.pop(_MODE)
        mode = mode[0] if isinstance(mode, list) else mode
        if return_type == ReturnType.TENSORS:
            return super().postprocess(
                model_outputs,
                return_type,
                clean_up_tokenization_spaces,
                skip_special_tokens=skip_special_tokens,
                **kwargs,
            )
        decode_kwargs: dict[str, Any] = {
            "skip_special_tokens": True if skip_special_tokens is None else skip_special_tokens,
            "clean_up_tokenization_spaces": clean_up_tokenization_spaces,
        }
        input_ids = model_outputs["input_ids"]
        prompt = _AskedPrompt(model_outputs["prompt_text"], [] if input_ids is None else input_ids[0].tolist())
        full_text = return_type == ReturnType.FULL_TEXT
        text_of = {INFILL: self._infilled_text, CHAT: self._chat_text, COMPLETE: self._completed_text}[mode]
        return [
            {"generated_text": text_of(prompt, sequence[len(prompt.ids) :], full_text, decode_kwargs)}
            for sequence in model_outputs["generated_sequence"][0].tolist()
        ]

    def _infilled_text(self, prompt: _AskedPrompt, new_ids: list[int], full_text: bool, decode_kwargs: dict) -> str:
        middle = self._code_llama_tokenizer.decode_infill(new_ids)
        if not full_text:
            return middle
        prefix, suffix = split_fill_marker(prompt.text, self._code_llama_tokenizer.fill_token) or (prompt.text, "")
        return prefix + middle + suffix

    def _chat_text(self, prompt: _AskedPrompt, new_ids: list[int], full_text: bool, decode_kwargs: dict) -> Any:
        # Meta's chat_completion decodes the answer alone, up to the stop token (transformers releases differ in how
        # they slice it out of the whole sequence, so it is decoded here).
        answer = self._code_llama_tokenizer.decode(until_stop(new_ids, self._stop_ids(CHAT)), **decode_kwargs)
        return [*prompt.text.messages, {"role": "assistant", "content": answer}] if full_text else answer

    def _completed_text(self, prompt: _AskedPrompt, new_ids: list[int], full_text: bool, decode_kwargs: dict) -> str:
        new_ids = until_stop(new_ids, self._stop_ids(COMPLETE))
        if not full_text:
            return self._code_llama_tokenizer.decode(new_ids, **decode_kwargs)
        # Decoding the new ids alone drops the leading space of their first piece (SentencePiece's dummy prefix);
        # what follows the prompt in the joint decode keeps it, so `prompt + continuation` reads as generated.
        head = self._code_llama_tokenizer.decode(prompt.ids, **decode_kwargs)
        whole = self._code_llama_tokenizer.decode(prompt.ids + new_ids, **decode_kwargs)
        if whole.startswith(head):
            return prompt.text + whole[len(head) :]
        return prompt.text + self._code_llama_tokenizer.decode(new_ids, **decode_kwargs)


def register_pipeline() -> None:
    """Point the `text-generation` task at `CodeLlamaTextGenerationPipeline` (idempotent).

    The registry entry is replaced in place (same models, defaults and type, only `impl` changes) rather than through
    `PIPELINE_REGISTRY.register_pipeline`, which would tag the class as a custom Hub pipeline and make saved
    pipelines demand `trust_remote_code`.
    """
    entry = PIPELINE_REGISTRY.supported_tasks["text-generation"]
    PIPELINE_REGISTRY.supported_tasks["text-generation"] = {**entry, "impl": CodeLlamaTextGenerationPipeline}


__all__ = ["CHAT", "COMPLETE", "INFILL", "CodeLlamaTextGenerationPipeline", "is_code_llama", "register_pipeline"]
