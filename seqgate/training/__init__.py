"""Fitting a model: batches (training windows and evaluation batches), train (`seqgate train`, the
loop), distributed (torchrun), runs (the run folder and its checkpoint record), evaluate (NLL and
frame accuracy, `seqgate evaluate`).
"""
