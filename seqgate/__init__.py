"""seqgate: polyphonic music sequence modeling with tanh RNN, GRU and LSTM.

The pipeline runs one way, one subpackage a stage: MIDI -> roll -> dataset file (data/) -> model
(model/) -> run (training/: train, the run folder, evaluate) -> samples and sound (music/) ->
comparisons and reports (compare/).
Reference: Chung, Gulcehre, Cho & Bengio (2014), "Empirical Evaluation of Gated Recurrent Neural
Networks on Sequence Modeling".
"""

__version__ = "0.1.0"
