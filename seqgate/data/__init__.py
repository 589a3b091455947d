"""MIDI and benchmark files in, one piano-roll dataset file out, and the reading of it back.

roll (MIDI <-> piano roll), keys (key estimation), prepare (`seqgate prepare`), workers (the parser
processes), writer (the dataset file written piece by piece), dataset (the file read back), npz
(its zip members), benchmarks (the four benchmark corpora and their published numbers).
"""
