"""Cells side by side: compare (`seqgate compare`, the runs and their numbers), report (the tables,
report.md and results.json), jobs (runs trained in parallel processes), demo (`seqgate demo`).
"""
