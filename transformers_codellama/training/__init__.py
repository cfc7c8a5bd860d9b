"""Training: FIM examples in Meta's layout (`fim`), the batch collator for `Trainer` (`fim_collator`), and the
package's tiny trained model with the script that trains it (`tiny_model`).

Nothing is imported here, so `import transformers_codellama.training.fim` needs neither torch nor transformers.
"""
