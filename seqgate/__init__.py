"""seqgate: polyphonic music sequence modeling with tanh RNN, GRU and LSTM.

The pipeline runs one way: MIDI -> roll (roll.py) -> dataset (prepare.py writes dataset.py's file)
-> model (model.py, heads.py) -> run (train.py, kept by runs.py) -> likelihood (evaluate.py),
samples (sample.py) and comparisons (compare.py).
Reference: Chung, Gulcehre, Cho & Bengio (2014), "Empirical Evaluation of Gated Recurrent Neural
Networks on Sequence Modeling".
"""

__version__ = "0.1.0"
