"""Training: FIM examples in Meta's layout (`fim`), the batch collator for `Trainer` (`fim_collator`), and the
script that trains the package's tiny model (`tiny_model`; the shipped model itself is `transformers_codellama.tiny_checkpoint`).

Nothing is imported here: each module is loaded when it is used (`fim` needs no torch; the other two import it).
"""
