"""Training: FIM examples in Meta's layout (`fim`), the batch collator for `Trainer` (`fim_collator`), and the
package's tiny trained model with the script that trains it (`tiny_model`).

Nothing is imported here: each module is loaded when it is used (`fim` needs no torch; the other two import it).
"""
