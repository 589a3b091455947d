"""The next-step predictor: cells (the table of cell facts), heads (a frame's output distribution),
network (NextStepModel and ModelConfig: its likelihood and sampling step), sizing (parameter counts
and budgets), reference (the cells' equations written out, for the tests).
"""
